// distrifuse-metrics: PSNR, LPIPS and FID between two image folders, as DistriFusion's
// scripts/compute_metrics.py computes them (torchmetrics PSNR / LPIPS-AlexNet, clean-fid FID).
//
//   distrifuse-metrics --input-root0 A --input-root1 B [--is-gt] [--lpips-weights F]
//                      [--fid-weights F] [--json] [--html OUT.html] [--save-stats F]
//                      [--ref-stats F] [-t N]
//
// Results go to stdout ("PSNR: x", "LPIPS: x", "FID: x"; with --json the last line is one JSON
// object); progress, timings and errors go to stderr ("distrifuse-metrics: error: <detail>").
// Exit codes: 0 ok, 1 runtime failure (unreadable image / weights, mismatched folders), 2 usage.
#include "distrifuse/metrics.h"

#include "core/core.h"
#include "kernels/kernels.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "distrifuse-metrics"
#define GT_SIZE 1024

typedef struct args {
    const char *root0, *root1, *lpips_w, *fid_w, *save_stats, *ref_stats, *html;
    int is_gt, json, threads, quiet;
} args;

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: " PROG " --input-root0 A --input-root1 B [options]\n"
        "\n"
        "PSNR, LPIPS and FID between the images of folders A and B, paired by sorted name\n"
        "(DistriFusion's compute_metrics.py: torchmetrics PSNR and LPIPS-AlexNet, clean-fid FID).\n"
        "\n"
        "  --input-root0 DIR        folder A (the reference: 1-rank output or ground truth)\n"
        "  --input-root1 DIR        folder B (the images to evaluate)\n"
        "  --is-gt                  A is a ground-truth folder: its images are resized to\n"
        "                           1024x1024 (bilinear, antialias) for PSNR and LPIPS\n"
        "  --lpips-weights FILE     LPIPS AlexNet weights (.safetensors; see README)\n"
        "  --fid-weights FILE       FID Inception-v3 weights (.safetensors; see README)\n"
        "  --save-stats FILE        write the FID statistics (mu, sigma) of A to FILE\n"
        "  --ref-stats FILE         take A's FID statistics from FILE instead of A's images\n"
        "                           (then --input-root0 is optional: FID only)\n"
        "  --json                   print the results as one JSON object (last stdout line)\n"
        "  --html OUT.html          write a side-by-side page of the pairs, sorted by LPIPS\n"
        "  -t, --threads N          threads (0 = all cores; default 0)\n"
        "  -q, --quiet              no progress / timing lines on stderr\n"
        "  -h, --help               show this help and exit\n"
        "\n"
        "Without weights PSNR still runs; LPIPS / FID then say which file is missing.\n"
        "Exit status: 0 success, 1 runtime error, 2 usage error.\n");
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, PROG ": error: %s%s%s (see --help)\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

static int fail(const char *what) {
    const char *e = df_last_error();
    fprintf(stderr, PROG ": error: %s%s%s\n", what, *e ? ": " : "", e);
    return 1;
}

static int parse(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char **dst = NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(s, "--is-gt")) {
            a->is_gt = 1;
            continue;
        } else if (!strcmp(s, "--json")) {
            a->json = 1;
            continue;
        } else if (!strcmp(s, "-q") || !strcmp(s, "--quiet")) {
            a->quiet = 1;
            continue;
        } else if (!strcmp(s, "-t") || !strcmp(s, "--threads")) {
            if (i + 1 >= argc) return usage_error("missing value for", s);
            char *end;
            errno = 0;
            const long v = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v < 0 || v > 4096)
                return usage_error("--threads needs an integer >= 0, got", argv[i]);
            a->threads = (int)v;
            continue;
        } else if (!strcmp(s, "--input-root0")) {
            dst = &a->root0;
        } else if (!strcmp(s, "--input-root1")) {
            dst = &a->root1;
        } else if (!strcmp(s, "--lpips-weights")) {
            dst = &a->lpips_w;
        } else if (!strcmp(s, "--fid-weights")) {
            dst = &a->fid_w;
        } else if (!strcmp(s, "--save-stats")) {
            dst = &a->save_stats;
        } else if (!strcmp(s, "--ref-stats")) {
            dst = &a->ref_stats;
        } else if (!strcmp(s, "--html")) {
            dst = &a->html;
        } else {
            return usage_error("unknown option", s);
        }
        if (i + 1 >= argc || !argv[i + 1][0]) return usage_error("missing value for", s);
        *dst = argv[++i];
    }
    if (!a->root1) return usage_error("no --input-root1 DIR given", NULL);
    if (!a->root0 && !a->ref_stats)
        return usage_error("no --input-root0 DIR given (or --ref-stats FILE for FID only)", NULL);
    if (a->save_stats && !a->root0)
        return usage_error("--save-stats writes the statistics of --input-root0", NULL);
    if ((a->save_stats || a->ref_stats) && !a->fid_w)
        return usage_error("--save-stats / --ref-stats need --fid-weights FILE", NULL);
    if (a->save_stats && a->ref_stats)
        return usage_error("--save-stats and --ref-stats exclude each other", NULL);
    if (a->html && !a->root0) return usage_error("--html needs --input-root0", NULL);
    if (a->is_gt && !a->root0) return usage_error("--is-gt needs --input-root0", NULL);
    return 0;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

// ---------------------------------------------------------------------------------------------
// PSNR / LPIPS over the pairs

typedef struct pair_result {
    float psnr, lpips;
} pair_result;

static df_status one_pair(const args *a, const df_lpips *lp, const char *p0, const char *p1,
                          pair_result *r) {
    uint8_t *x0 = NULL, *x1 = NULL;
    int w0, h0, w1, h1;
    df_status st = df_metrics_read_image(p0, &x0, &w0, &h0);
    if (st == DF_OK) st = df_metrics_read_image(p1, &x1, &w1, &h1);
    if (st == DF_OK && a->is_gt && (w0 != GT_SIZE || h0 != GT_SIZE)) {
        uint8_t *t = df_malloc((size_t)GT_SIZE * GT_SIZE * 3);
        if (!t) {
            st = DF_ERROR(DF_ERR_NOMEM, "resizing %s", p0);
        } else {
            df_resize_bilinear_aa_u8(t, GT_SIZE, GT_SIZE, x0, h0, w0);
            df_metrics_free(x0);
            x0 = t, w0 = h0 = GT_SIZE;
        }
    }
    if (st == DF_OK && (w0 != w1 || h0 != h1))
        st = DF_ERROR(DF_ERR_SHAPE, "%s is %dx%d but %s is %dx%d: paired images must have one "
                      "size%s", p0, w0, h0, p1, w1, h1, a->is_gt ? "" : " (--is-gt resizes A)");
    if (st == DF_OK) {
        r->psnr = df_psnr_u8(x0, x1, (size_t)w0 * h0 * 3);
        r->lpips = NAN;
        if (lp) st = df_lpips_distance(lp, x0, x1, h0, w0, &r->lpips, NULL);
    }
    df_metrics_free(x0);
    df_metrics_free(x1);
    return st;
}

static void progress_line(const args *a, const char *what, int done, int n) {
    if (a->quiet || !isatty(2)) return;
    fprintf(stderr, "\r%s %d/%d", what, done, n);
    if (done == n) fprintf(stderr, "\n");
}

static int run_pairs(const args *a, const df_lpips *lp, const df_path_list *l0,
                     const df_path_list *l1, pair_result *res) {
    const int n = l0->n;
    int failed = 0, done = 0, fail_i = 0;
    char msg[1200] = "";
    const int par = n > 1 && df_get_threads() > 1;
    // one pair per thread; the GEMMs inside then run single-threaded
    const int saved = par ? df_blas_single_begin() : 1;
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int i = 0; i < n; i++) {
        int skip;
#pragma omp critical(df_metrics_pairs)
        skip = failed && i > fail_i;
        if (skip) continue;
        const df_status st = one_pair(a, lp, l0->paths[i], l1->paths[i], &res[i]);
#pragma omp critical(df_metrics_pairs)
        {
            // the first failing pair in list order (pairs are handed out in order, and those
            // before a failure all run: deterministic whatever the thread timing)
            if (st != DF_OK && (!failed || i < fail_i)) {
                failed = 1, fail_i = i;
                snprintf(msg, sizeof msg, "%s", df_last_error());
            }
            done++;
            progress_line(a, lp ? "PSNR/LPIPS" : "PSNR", done, n);
        }
    }
    if (par) df_blas_single_end(saved);
    if (failed) {
        fprintf(stderr, PROG ": error: %s\n", msg);
        return 1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// FID

typedef struct fid_ctx {
    const args *a;
    const char *what;
} fid_ctx;

static void fid_progress(void *ctx, int done, int n) {
    const fid_ctx *c = ctx;
    progress_line(c->a, c->what, done, n);
}

static char g_fid_skip[1200]; // why FID was not computed (too few images), or ""

// Statistics of one folder; *nimg the number of images. 0 ok, 1 error (printed), 2 too few images.
static int folder_stats(const args *a, const df_inception *m, const char *dir, const char *label,
                        df_fid_stats *s, int *nimg, double *secs) {
    df_path_list l;
    if (df_metrics_list_fid(dir, &l) != DF_OK) return fail("FID");
    *nimg = l.n;
    if (l.n < 2) { // not an error for the other metrics: FID is reported as not computed
        snprintf(g_fid_skip, sizeof g_fid_skip,
                 "%s has %d image%s; FID needs at least 2 per folder", dir, l.n,
                 l.n == 1 ? "" : "s");
        df_path_list_free(&l);
        return 2;
    }
    float *feats = NULL;
    char what[64];
    snprintf(what, sizeof what, "FID features %s", label);
    fid_ctx c = {a, what};
    const double t0 = df_time_s();
    df_status st = df_inception_features_files(m, &l, &feats, fid_progress, &c);
    *secs += df_time_s() - t0;
    df_path_list_free(&l);
    if (st != DF_OK) return fail("FID");
    st = df_fid_stats_from_features(feats, *nimg, DF_FID_DIM, s);
    df_free(feats);
    if (st != DF_OK) return fail("FID");
    return 0;
}

// ---------------------------------------------------------------------------------------------
// HTML page

// Relative URL (percent-encoded) of file `path` as seen from directory `from` (both absolute).
static void rel_url(char *out, size_t cap, const char *from, const char *path) {
    // common directory prefix
    size_t i = 0, last = 0;
    while (from[i] && path[i] && from[i] == path[i]) {
        if (from[i] == '/') last = i;
        i++;
    }
    if (!from[i] && path[i] == '/') last = i;
    char rel[8192] = "";
    size_t n = 0;
    // one "../" per remaining component of `from` after the common prefix
    for (const char *p = from + last; *p && n + 4 < sizeof rel; p++)
        if (*p == '/' && p[1]) n += (size_t)snprintf(rel + n, sizeof rel - n, "../");
    snprintf(rel + n, sizeof rel - n, "%s", path + last + 1);
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)rel; *p && o + 4 < cap; p++) {
        const int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                       (*p >= '0' && *p <= '9') || strchr("-._~/", *p);
        if (ok) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%', out[o++] = hex[*p >> 4], out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
}

static void html_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

static const pair_result *g_sort_res;
static int cmp_lpips(const void *x, const void *y) {
    const pair_result *a = &g_sort_res[*(const int *)x], *b = &g_sort_res[*(const int *)y];
    if (!isnan(a->lpips) && !isnan(b->lpips) && a->lpips != b->lpips)
        return a->lpips < b->lpips ? 1 : -1; // descending: the most different pairs first
    if (a->psnr != b->psnr) return a->psnr < b->psnr ? -1 : 1;
    return *(const int *)x - *(const int *)y;
}

static void fmt_num(char *buf, size_t cap, double v, int prec) {
    if (isnan(v)) snprintf(buf, cap, "n/a");
    else if (isinf(v)) snprintf(buf, cap, "inf");
    else snprintf(buf, cap, "%.*f", prec, v);
}

static int write_html(const args *a, const df_path_list *l0, const df_path_list *l1,
                      const pair_result *res, float psnr, float lpips, double fid, int have_fid) {
    // the page's folder, absolute
    char outdir[PATH_MAX], tmpd[PATH_MAX];
    snprintf(tmpd, sizeof tmpd, "%s", a->html);
    char *slash = strrchr(tmpd, '/');
    if (slash == tmpd) tmpd[1] = 0;
    else if (slash) *slash = 0;
    else snprintf(tmpd, sizeof tmpd, ".");
    if (!realpath(tmpd, outdir)) {
        fprintf(stderr, PROG ": error: --html: folder %s: %s\n", tmpd, strerror(errno));
        return 1;
    }
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", a->html, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, PROG ": error: --html: cannot write %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    const int n = l0->n;
    int *order = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!order) {
        fclose(f);
        remove(tmp);
        fprintf(stderr, PROG ": error: out of memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    g_sort_res = res;
    qsort(order, (size_t)n, sizeof(int), cmp_lpips);
    char b1[64], b2[64], b3[64];
    fmt_num(b1, sizeof b1, psnr, 4);
    fmt_num(b2, sizeof b2, lpips, 5);
    fmt_num(b3, sizeof b3, have_fid ? fid : NAN, 4);
    fprintf(f,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n<title>distrifuse-metrics: ");
    html_text(f, a->root0);
    fprintf(f, " vs ");
    html_text(f, a->root1);
    fprintf(f, "</title>\n<style>body{font-family:sans-serif;margin:1em}"
               "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px;"
               "vertical-align:top;text-align:center}img{width:384px;height:auto;display:block}"
               ".n{font-family:monospace}</style>\n</head><body>\n<h1>");
    html_text(f, a->root0);
    fprintf(f, " vs ");
    html_text(f, a->root1);
    fprintf(f, "</h1>\n<p>%d pairs%s. Mean PSNR %s dB, LPIPS %s, FID %s. Sorted by %s.</p>\n"
               "<table>\n<tr><th>#</th><th>A (input-root0)</th><th>B (input-root1)</th>"
               "<th>PSNR (dB)</th><th>LPIPS</th></tr>\n",
            n, a->is_gt ? " (A is ground truth, resized to 1024x1024 for the metrics)" : "", b1,
            b2, b3, isnan(lpips) ? "PSNR (lowest first; no LPIPS weights given)"
                                 : "LPIPS (largest first)");
    for (int r = 0; r < n; r++) {
        const int i = order[r];
        char abs0[PATH_MAX], abs1[PATH_MAX], u0[3 * PATH_MAX], u1[3 * PATH_MAX];
        if (!realpath(l0->paths[i], abs0) || !realpath(l1->paths[i], abs1)) {
            fclose(f);
            remove(tmp);
            free(order);
            fprintf(stderr, PROG ": error: --html: %s: %s\n", l0->paths[i], strerror(errno));
            return 1;
        }
        rel_url(u0, sizeof u0, outdir, abs0);
        rel_url(u1, sizeof u1, outdir, abs1);
        fmt_num(b1, sizeof b1, res[i].psnr, 4);
        fmt_num(b2, sizeof b2, res[i].lpips, 5);
        fprintf(f, "<tr><td>%d</td><td><img src=\"%s\" alt=\"A %d\"><span class=\"n\">", r + 1,
                u0, i);
        html_text(f, base_name(l0->paths[i]));
        fprintf(f, "</span></td><td><img src=\"%s\" alt=\"B %d\"><span class=\"n\">", u1, i);
        html_text(f, base_name(l1->paths[i]));
        fprintf(f, "</span></td><td class=\"n\">%s</td><td class=\"n\">%s</td></tr>\n", b1, b2);
    }
    fprintf(f, "</table>\n</body></html>\n");
    free(order);
    const int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, a->html) != 0) {
        fprintf(stderr, PROG ": error: --html: cannot write %s: %s\n", a->html, strerror(errno));
        remove(tmp);
        return 1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------

static cJSON *num_or_inf(double v) {
    if (isnan(v)) return cJSON_CreateNull();
    if (isinf(v)) return cJSON_CreateString(v > 0 ? "inf" : "-inf");
    return cJSON_CreateNumber(v);
}

static int run(const args *a) {
    df_set_threads(a->threads);
    df_path_list l0 = {0}, l1 = {0};
    df_lpips *lp = NULL;
    df_inception *inc = NULL;
    pair_result *res = NULL;
    df_fid_stats s0 = {0}, s1 = {0};
    int rc = 1, n = 0, have_pairs = a->root0 != NULL, have_fid = 0, nf0 = 0, nf1 = 0;
    float psnr = NAN, lpips = NAN;
    double fid = NAN, t_pairs = 0, t_fid = 0, t_fr = 0;

    if (have_pairs) {
        if (df_metrics_list_pairs(a->root0, &l0) != DF_OK) {
            fail("--input-root0");
            goto out;
        }
        if (df_metrics_list_pairs(a->root1, &l1) != DF_OK) {
            fail("--input-root1");
            goto out;
        }
        if (l0.n != l1.n) {
            fprintf(stderr,
                    PROG ": error: %s has %d images but %s has %d: the counts must be equal\n",
                    a->root0, l0.n, a->root1, l1.n);
            goto out;
        }
        if (l0.n == 0) {
            fprintf(stderr, PROG ": error: no .png / .jpg images in %s\n", a->root0);
            goto out;
        }
        n = l0.n;
    } else if (access(a->root1, R_OK) != 0) {
        fprintf(stderr, PROG ": error: --input-root1: cannot read %s: %s\n", a->root1,
                strerror(errno));
        goto out;
    }
    if (a->lpips_w && df_lpips_load(a->lpips_w, &lp) != DF_OK) {
        fail("--lpips-weights");
        goto out;
    }
    if (a->fid_w && df_inception_load(a->fid_w, &inc) != DF_OK) {
        fail("--fid-weights");
        goto out;
    }
    if (a->ref_stats && df_fid_stats_load(a->ref_stats, &s0) != DF_OK) {
        fail("--ref-stats");
        goto out;
    }
    if (s0.mu && s0.dim != DF_FID_DIM) {
        fprintf(stderr, PROG ": error: --ref-stats: %s has dimension %d, expected %d\n",
                a->ref_stats, s0.dim, DF_FID_DIM);
        goto out;
    }

    if (have_pairs) {
        res = calloc((size_t)n, sizeof *res);
        if (!res) goto out;
        const double t0 = df_time_s();
        if (run_pairs(a, lp, &l0, &l1, res)) goto out;
        t_pairs = df_time_s() - t0;
        float *v = malloc(sizeof(float) * (size_t)n);
        if (!v) goto out;
        for (int i = 0; i < n; i++) v[i] = res[i].psnr;
        psnr = df_mean_f32(v, n);
        if (lp) {
            for (int i = 0; i < n; i++) v[i] = res[i].lpips;
            lpips = df_mean_f32(v, n);
        }
        free(v);
    }
    if (inc) {
        int r0 = 0, r1 = 0;
        if (!s0.mu && (r0 = folder_stats(a, inc, a->root0, "A", &s0, &nf0, &t_fid)) == 1) goto out;
        if (s0.mu && a->ref_stats) nf0 = (int)s0.count;
        if (a->save_stats && r0 == 2) {
            fprintf(stderr, PROG ": error: --save-stats: %s\n", g_fid_skip);
            goto out;
        }
        if (a->save_stats && df_fid_stats_save(&s0, a->save_stats) != DF_OK) {
            fail("--save-stats");
            goto out;
        }
        if (r0 == 0 && (r1 = folder_stats(a, inc, a->root1, "B", &s1, &nf1, &t_fid)) == 1) goto out;
        if (r0 == 0 && r1 == 0) {
            const double t0 = df_time_s();
            if (df_frechet_distance(&s0, &s1, &fid, NULL) != DF_OK) {
                fail("FID");
                goto out;
            }
            t_fr = df_time_s() - t0;
            have_fid = 1;
        }
    }

    // human-readable results
    char buf[64];
    if (have_pairs) {
        printf("pairs: %d (%s vs %s%s)\n", n, a->root0, a->root1, a->is_gt ? ", --is-gt" : "");
        fmt_num(buf, sizeof buf, psnr, 6);
        printf("PSNR: %s\n", buf);
        if (lp) printf("LPIPS: %.8f\n", lpips);
        else printf("LPIPS: not computed: no --lpips-weights FILE.safetensors given (see README, "
                    "\"Quality metrics\")\n");
    } else {
        printf("PSNR: not computed: no --input-root0 (FID against --ref-stats only)\n");
        printf("LPIPS: not computed: no --input-root0 (FID against --ref-stats only)\n");
    }
    if (have_fid) printf("FID: %.6f\n", fid);
    else if (inc) printf("FID: not computed: %s\n", g_fid_skip);
    else printf("FID: not computed: no --fid-weights FILE.safetensors given (see README, "
                "\"Quality metrics\")\n");
    if (!a->quiet) {
        if (have_pairs)
            fprintf(stderr, "metrics: %d pairs in %.2f s (%.2f pairs/s)%s\n", n, t_pairs,
                    t_pairs > 0 ? n / t_pairs : 0.0, lp ? "" : ", PSNR only");
        if (have_fid)
            fprintf(stderr, "metrics: FID features of %d images in %.2f s (%.2f images/s), "
                            "Frechet distance %.2f s\n",
                    (a->ref_stats ? 0 : nf0) + nf1, t_fid,
                    t_fid > 0 ? ((a->ref_stats ? 0 : nf0) + nf1) / t_fid : 0.0, t_fr);
    }
    if (a->html && have_pairs && write_html(a, &l0, &l1, res, psnr, lpips, fid, have_fid))
        goto out;
    if (a->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "count", n);
        cJSON_AddItemToObject(j, "psnr", have_pairs ? num_or_inf(psnr) : cJSON_CreateNull());
        cJSON_AddItemToObject(j, "lpips", lp ? num_or_inf(lpips) : cJSON_CreateNull());
        cJSON_AddItemToObject(j, "fid", have_fid ? num_or_inf(fid) : cJSON_CreateNull());
        cJSON *pp = cJSON_CreateArray(), *lpp = lp ? cJSON_CreateArray() : cJSON_CreateNull();
        for (int i = 0; i < n; i++) {
            cJSON_AddItemToArray(pp, num_or_inf(res[i].psnr));
            if (lp) cJSON_AddItemToArray(lpp, num_or_inf(res[i].lpips));
        }
        cJSON_AddItemToObject(j, "psnr_per_image", pp);
        cJSON_AddItemToObject(j, "lpips_per_image", lpp);
        cJSON *f0 = cJSON_CreateArray(), *f1 = cJSON_CreateArray();
        for (int i = 0; i < n; i++) {
            cJSON_AddItemToArray(f0, cJSON_CreateString(base_name(l0.paths[i])));
            cJSON_AddItemToArray(f1, cJSON_CreateString(base_name(l1.paths[i])));
        }
        cJSON_AddItemToObject(j, "files0", f0);
        cJSON_AddItemToObject(j, "files1", f1);
        cJSON_AddBoolToObject(j, "is_gt", a->is_gt);
        if (have_fid) {
            cJSON_AddNumberToObject(j, "fid_count0", nf0);
            cJSON_AddNumberToObject(j, "fid_count1", nf1);
        }
        char *s = cJSON_PrintUnformatted(j);
        if (s) printf("%s\n", s);
        free(s);
        cJSON_Delete(j);
    }
    fflush(stdout);
    rc = ferror(stdout) ? 1 : 0;
out:
    df_path_list_free(&l0);
    df_path_list_free(&l1);
    df_lpips_free(lp);
    df_inception_free(inc);
    df_fid_stats_free(&s0);
    df_fid_stats_free(&s1);
    free(res);
    return rc;
}

int main(int argc, char **argv) {
    args a;
    const int u = parse(argc, argv, &a);
    if (u) return u;
    return run(&a);
}
