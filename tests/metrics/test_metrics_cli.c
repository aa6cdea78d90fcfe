// The distrifuse-metrics program (DF_METRICS_BIN), one case per argument:
//   usage       bad options exit 2 with one error line; --help exits 0
//   pairing     sorted-name pairing of top-level .png files (others ignored), PSNR per pair
//   counts      unequal image counts: exit 1, one clear line, no results
//   grayscale   an 8-bit gray PNG counts as its 3 identical channels (PSNR inf as "inf")
//   is_gt       --is-gt resizes A to 1024x1024; without it the size mismatch is an error
//   json        --json: the last stdout line is one JSON object with the documented keys
//   no_weights  without weights PSNR runs; LPIPS / FID say what is missing, JSON null
//   golden_cli  the program on the golden folders vs the reference values (needs ../shared)
//   stats       --save-stats / --ref-stats round trip, FID of 1-image folders not computed
//               (golden FID weights; skips without)
//   html        --html page loaded in headless Chromium: 2 x pairs images decode (skips
//               without chromium)
// All images except the golden ones are written by the test itself.
#include "df_golden.h"

#include "distrifuse/metrics.h"

#include "core/core.h"
#include "io/image_png.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *g_bin;
static char g_tmp[256];

static unsigned g_seed = 12345;
static uint8_t rnd8(void) {
    g_seed = g_seed * 1103515245u + 12345u;
    return (uint8_t)(g_seed >> 16);
}

static void mkdir_p(const char *d) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", d);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot create %s\n", d);
        exit(1);
    }
}

// g_tmp/dir or g_tmp/dir/name (4 rotating buffers)
static const char *tpath(const char *dir, const char *name) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    if (name) snprintf(buf[k], sizeof buf[k], "%s/%s/%s", g_tmp, dir, name);
    else snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, dir);
    return buf[k];
}

static void write_rgb(const char *path, const uint8_t *rgb, int w, int h) {
    if (df_png_write(path, rgb, w, h, NULL, NULL, 0) != DF_OK) {
        fprintf(stderr, "%s\n", df_last_error());
        exit(1);
    }
}

static void write_gray(const char *path, const uint8_t *g, int w, int h) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (!f || !png || !info || setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(g + (size_t)y * w));
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static uint8_t *rand_img(int w, int h) {
    uint8_t *p = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h * 3; i++) p[i] = rnd8();
    return p;
}

// Runs the program with `args`; returns the exit status, stdout / stderr in malloc'ed strings.
static int run(const char *args, char **out, char **err) {
    char cmd[8192], ef[512];
    snprintf(ef, sizeof ef, "%s/stderr.txt", g_tmp);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", g_bin, args, ef);
    FILE *p = popen(cmd, "r");
    if (!p) exit(1);
    size_t cap = 1 << 16, n = 0;
    char *o = malloc(cap);
    size_t r;
    while ((r = fread(o + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (n + 1 == cap) o = realloc(o, cap *= 2);
    }
    o[n] = 0;
    const int st = pclose(p);
    char *e = NULL;
    if (df_read_text_file(ef, (size_t)16 << 20, 0, &e, NULL) != DF_OK) e = strdup("");
    fprintf(stderr, "$ distrifuse-metrics %s\n  -> exit %d\n%s%s", args,
            WIFEXITED(st) ? WEXITSTATUS(st) : -1, o, e);
    *out = o;
    if (err) *err = e;
    else free(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The last line of s as JSON (NULL if it is not an object).
static cJSON *last_json(const char *s) {
    const char *end = s + strlen(s);
    while (end > s && end[-1] == '\n') end--;
    const char *beg = end;
    while (beg > s && beg[-1] != '\n') beg--;
    char *line = strndup(beg, (size_t)(end - beg));
    cJSON *j = cJSON_Parse(line);
    free(line);
    if (j && !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        j = NULL;
    }
    return j;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

// ---------------------------------------------------------------------------------------------
static void case_usage(void) {
    char *o, *e;
    static const char *bad[] = {"", "--input-root0 x", "--input-root1 y --bogus",
                                "--input-root0 x --input-root1 y -t abc",
                                "--input-root0 x --input-root1",
                                "--input-root0 x --input-root1 y --save-stats s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        EXPECT_EQ_I64(run(bad[i], &o, &e), 2);
        EXPECT_TRUE(strstr(e, "distrifuse-metrics: error: ") != NULL);
        EXPECT_EQ_I64(count_lines(e), 1);
        EXPECT_EQ_I64(strlen(o), 0);
        free(o), free(e);
    }
    EXPECT_EQ_I64(run("--help", &o, &e), 0);
    EXPECT_TRUE(strstr(o, "--input-root0") && strstr(o, "--is-gt") && strstr(o, "--json") &&
                strstr(o, "--html") && strstr(o, "--ref-stats"));
    free(o), free(e);
}

// Writes pairs (A_i, B_i) with names; returns the expected PSNRs in name-sorted order.
static void case_pairing(void) {
    mkdir_p(tpath("A", NULL)), mkdir_p(tpath("B", NULL)), mkdir_p(tpath("A/sub", NULL));
    mkdir_p(tpath("B/sub", NULL));
    static const char *names[4] = {"b.png", "a.png", "10.png", "9.png"}; // sorted: 10 9 a b
    static const int sorted_idx[4] = {2, 3, 1, 0};
    float want[4];
    for (int i = 0; i < 4; i++) {
        const int w = 40, h = 32;
        uint8_t *a = rand_img(w, h), *b = malloc((size_t)w * h * 3);
        for (int k = 0; k < w * h * 3; k++)
            b[k] = (uint8_t)(a[k] + (rnd8() % (2 * i + 3)) - (i + 1));
        write_rgb(tpath("A", names[i]), a, w, h);
        write_rgb(tpath("B", names[i]), b, w, h);
        want[i] = df_psnr_u8(a, b, (size_t)w * h * 3);
        free(a), free(b);
    }
    // ignored by compute_metrics' listing: other extensions, upper case, subfolders
    uint8_t *junk = rand_img(8, 8);
    write_rgb(tpath("A", "UPPER.PNG"), junk, 8, 8);
    write_rgb(tpath("A/sub", "deep.png"), junk, 8, 8);
    FILE *f = fopen(tpath("B", "notes.txt"), "w");
    fputs("not an image\n", f);
    fclose(f);
    free(junk);
    char args[1024], *o, *e;
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s' --json -t 2",
             tpath("A", NULL), tpath("B", NULL));
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    cJSON *j = last_json(o);
    EXPECT_TRUE(j != NULL);
    if (j) {
        EXPECT_EQ_I64(cJSON_GetObjectItem(j, "count")->valueint, 4);
        const cJSON *pp = cJSON_GetObjectItem(j, "psnr_per_image"),
                    *f0 = cJSON_GetObjectItem(j, "files0");
        double mean = 0;
        for (int r = 0; r < 4; r++) {
            const int i = sorted_idx[r];
            EXPECT_TRUE(!strcmp(cJSON_GetArrayItem(f0, r)->valuestring, names[i]));
            EXPECT_LE_F64(fabs(cJSON_GetArrayItem(pp, r)->valuedouble - want[i]), 1e-4);
            mean += want[i] / 4;
        }
        EXPECT_LE_F64(fabs(cJSON_GetObjectItem(j, "psnr")->valuedouble - mean), 1e-4);
        cJSON_Delete(j);
    }
    free(o), free(e);
}

static void case_counts(void) {
    mkdir_p(tpath("A", NULL)), mkdir_p(tpath("B", NULL));
    uint8_t *a = rand_img(32, 32);
    write_rgb(tpath("A", "0.png"), a, 32, 32);
    write_rgb(tpath("A", "1.png"), a, 32, 32);
    write_rgb(tpath("A", "2.png"), a, 32, 32);
    write_rgb(tpath("B", "0.png"), a, 32, 32);
    write_rgb(tpath("B", "1.png"), a, 32, 32);
    free(a);
    char args[1024], *o, *e;
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s' --json", tpath("A", NULL),
             tpath("B", NULL));
    EXPECT_EQ_I64(run(args, &o, &e), 1);
    EXPECT_TRUE(strstr(e, "has 3 images") && strstr(e, "has 2") &&
                strstr(e, "counts must be equal"));
    EXPECT_EQ_I64(count_lines(e), 1);
    EXPECT_EQ_I64(strlen(o), 0);
    free(o), free(e);
    // a missing folder
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s/nope'", tpath("A", NULL),
             g_tmp);
    EXPECT_EQ_I64(run(args, &o, &e), 1);
    EXPECT_TRUE(strstr(e, "nope") != NULL);
    free(o), free(e);
}

static void case_grayscale(void) {
    mkdir_p(tpath("A", NULL)), mkdir_p(tpath("B", NULL));
    const int w = 48, h = 40;
    uint8_t *g = malloc((size_t)w * h), *rgb = malloc((size_t)w * h * 3),
            *rgb2 = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h; i++) g[i] = rnd8();
    for (int i = 0; i < w * h; i++) {
        rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = g[i];
        for (int c = 0; c < 3; c++) rgb2[i * 3 + c] = (uint8_t)(g[i] ^ (rnd8() & 3));
    }
    write_gray(tpath("A", "0.png"), g, w, h);
    write_rgb(tpath("B", "0.png"), rgb, w, h);   // identical after the 3-channel expansion
    write_gray(tpath("A", "1.png"), g, w, h);
    write_rgb(tpath("B", "1.png"), rgb2, w, h);
    const float want1 = df_psnr_u8(rgb, rgb2, (size_t)w * h * 3);
    char args[1024], *o, *e;
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s' --json", tpath("A", NULL),
             tpath("B", NULL));
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    EXPECT_TRUE(strstr(o, "PSNR: inf\n") != NULL);
    cJSON *j = last_json(o);
    EXPECT_TRUE(j != NULL);
    if (j) {
        const cJSON *p = cJSON_GetObjectItem(j, "psnr"),
                    *pp = cJSON_GetObjectItem(j, "psnr_per_image");
        EXPECT_TRUE(cJSON_IsString(p) && !strcmp(p->valuestring, "inf"));
        EXPECT_TRUE(cJSON_IsString(cJSON_GetArrayItem(pp, 0)) &&
                    !strcmp(cJSON_GetArrayItem(pp, 0)->valuestring, "inf"));
        EXPECT_LE_F64(fabs(cJSON_GetArrayItem(pp, 1)->valuedouble - want1), 1e-4);
        cJSON_Delete(j);
    }
    free(o), free(e), free(g), free(rgb), free(rgb2);
}

static void case_is_gt(void) {
    mkdir_p(tpath("A", NULL)), mkdir_p(tpath("B", NULL));
    // A: a smooth 300x200 image and one already 1024x1024; B: their 1024x1024 resizes
    const int w = 300, h = 200;
    uint8_t *a = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                a[((size_t)y * w + x) * 3 + c] = (uint8_t)((x * (c + 1) + y * 2) & 255);
    uint8_t *b = malloc((size_t)1024 * 1024 * 3);
    df_resize_bilinear_aa_u8(b, 1024, 1024, a, h, w);
    write_rgb(tpath("A", "0.png"), a, w, h);
    write_rgb(tpath("B", "0.png"), b, 1024, 1024);
    // an exactly known case: a constant image stays constant at any size
    uint8_t *c1 = malloc((size_t)64 * 48 * 3), *c2 = malloc((size_t)1024 * 1024 * 3);
    memset(c1, 77, (size_t)64 * 48 * 3);
    memset(c2, 77, (size_t)1024 * 1024 * 3);
    write_rgb(tpath("A", "1.png"), c1, 64, 48);
    write_rgb(tpath("B", "1.png"), c2, 1024, 1024);
    char args[1024], *o, *e;
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s' --is-gt --json",
             tpath("A", NULL), tpath("B", NULL));
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    cJSON *j = last_json(o);
    EXPECT_TRUE(j != NULL);
    if (j) {
        const cJSON *pp = cJSON_GetObjectItem(j, "psnr_per_image");
        EXPECT_TRUE(cJSON_IsString(cJSON_GetArrayItem(pp, 0)));
        EXPECT_TRUE(cJSON_IsString(cJSON_GetArrayItem(pp, 1)));
        EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(j, "is_gt")));
        cJSON_Delete(j);
    }
    free(o), free(e);
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s'", tpath("A", NULL),
             tpath("B", NULL));
    EXPECT_EQ_I64(run(args, &o, &e), 1);
    EXPECT_TRUE(strstr(e, "300x200") && strstr(e, "1024x1024") && strstr(e, "one size")); // pair 0
    EXPECT_EQ_I64(count_lines(e), 1);
    free(o), free(e), free(a), free(b), free(c1), free(c2);
}

static void make_small_pairs(int n) {
    mkdir_p(tpath("A", NULL)), mkdir_p(tpath("B", NULL));
    for (int i = 0; i < n; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "%04d.png", i);
        uint8_t *a = rand_img(64, 64), *b = rand_img(64, 64);
        for (int k = 0; k < 64 * 64 * 3; k++) b[k] = (uint8_t)((a[k] + b[k] / 16) & 255);
        write_rgb(tpath("A", nm), a, 64, 64);
        write_rgb(tpath("B", nm), b, 64, 64);
        free(a), free(b);
    }
}

static void case_json(void) {
    make_small_pairs(3);
    char args[1024], *o, *e;
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s' --json", tpath("A", NULL),
             tpath("B", NULL));
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    EXPECT_TRUE(strstr(o, "PSNR: ") != NULL);
    cJSON *j = last_json(o);
    EXPECT_TRUE(j != NULL);
    if (j) {
        static const char *keys[] = {"psnr", "lpips", "fid", "psnr_per_image", "lpips_per_image",
                                     "count"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            EXPECT_TRUE(cJSON_GetObjectItem(j, keys[k]) != NULL);
        EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(j, "psnr")));
        EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(j, "count")));
        EXPECT_EQ_I64(cJSON_GetArraySize(cJSON_GetObjectItem(j, "psnr_per_image")), 3);
        cJSON_Delete(j);
    }
    // without --json: no JSON line
    free(o), free(e);
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s'", tpath("A", NULL),
             tpath("B", NULL));
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    EXPECT_TRUE(strchr(o, '{') == NULL);
    free(o), free(e);
}

static void case_no_weights(void) {
    make_small_pairs(2);
    char args[1024], *o, *e;
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s' --json", tpath("A", NULL),
             tpath("B", NULL));
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    EXPECT_TRUE(strstr(o, "LPIPS: not computed: no --lpips-weights") != NULL);
    EXPECT_TRUE(strstr(o, "FID: not computed: no --fid-weights") != NULL);
    cJSON *j = last_json(o);
    EXPECT_TRUE(j != NULL);
    if (j) {
        EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(j, "lpips")));
        EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(j, "fid")));
        EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(j, "lpips_per_image")));
        EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(j, "psnr")));
        cJSON_Delete(j);
    }
    free(o), free(e);
    // a weights file that is not there: an error, not a silent skip
    snprintf(args, sizeof args,
             "--input-root0 '%s' --input-root1 '%s' --lpips-weights '%s/none.safetensors'",
             tpath("A", NULL), tpath("B", NULL), g_tmp);
    EXPECT_EQ_I64(run(args, &o, &e), 1);
    EXPECT_TRUE(strstr(e, "--lpips-weights") && strstr(e, "none.safetensors"));
    EXPECT_EQ_I64(strlen(o), 0);
    free(o), free(e);
}

// ---------------------------------------------------------------------------------------------
static int golden(void) {
    if (!(dfg_dir = df_test_golden_dir())) return 0;
    FILE *f = fopen(dfg_path("metrics/README.md"), "r");
    if (!f) {
        fprintf(stderr, "SKIP: no metrics goldens in %s\n", dfg_dir);
        return 0;
    }
    fclose(f);
    return 1;
}

static void case_golden_cli(void) {
    cJSON *m = dfg_load_json(dfg_path("metrics/manifest.json"));
    if (!m) exit(1);
    static const char *cs[4][3] = {{"main", "a", "b"}, {"sizes", "sizes_a", "sizes_b"},
                                   {"same", "same_a", "same_b"}, {"gt", "gt_a", "gt_b"}};
    for (int k = 0; k < 4; k++) {
        const cJSON *c = NULL, *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItem(m, "cases")) {
            const cJSON *nm = cJSON_GetObjectItem(it, "case"),
                        *kd = cJSON_GetObjectItem(it, "kind");
            if (nm && kd && !strcmp(kd->valuestring, "compute_metrics") &&
                !strcmp(nm->valuestring, cs[k][0]))
                c = it;
        }
        EXPECT_TRUE(c != NULL);
        if (!c) continue;
        const cJSON *v = cJSON_GetObjectItem(c, "values");
        char args[4096], page[512], *o, *e;
        snprintf(page, sizeof page, "%s/page_%s.html", g_tmp, cs[k][0]);
        snprintf(args, sizeof args,
                 "--input-root0 '%s' --input-root1 '%s' %s --lpips-weights '%s' --fid-weights '%s' "
                 "--json -t 2"
                 " --html '%s'",
                 dfg_path("metrics/%s", cs[k][1]), dfg_path("metrics/%s", cs[k][2]),
                 k == 3 ? "--is-gt" : "", dfg_path("metrics/lpips_alex_random.safetensors"),
                 dfg_path("metrics/fid_inception_random.safetensors"), page);
        EXPECT_EQ_I64(run(args, &o, &e), 0);
        cJSON *j = last_json(o);
        EXPECT_TRUE(j != NULL);
        if (j) {
            const cJSON *pp = cJSON_GetObjectItem(j, "psnr_per_image"),
                        *lp = cJSON_GetObjectItem(j, "lpips_per_image");
            const cJSON *wp = cJSON_GetObjectItem(v, "psnr"), *wl = cJSON_GetObjectItem(v, "lpips");
            const int n = cJSON_GetArraySize(wp);
            EXPECT_EQ_I64(cJSON_GetObjectItem(j, "count")->valueint, n);
            for (int i = 0; i < n; i++) {
                const cJSON *g = cJSON_GetArrayItem(pp, i), *w = cJSON_GetArrayItem(wp, i);
                if (cJSON_IsString(w))
                    EXPECT_TRUE(cJSON_IsString(g) && !strcmp(g->valuestring, "inf"));
                else EXPECT_LE_F64(fabs(g->valuedouble - w->valuedouble), 1e-4);
                const double gl = cJSON_GetArrayItem(lp, i)->valuedouble,
                             wl_ = cJSON_GetArrayItem(wl, i)->valuedouble;
                EXPECT_LE_F64(fabs(gl - wl_), 1e-6 + 1e-5 * fabs(wl_));
            }
            const cJSON *gp = cJSON_GetObjectItem(j, "psnr"),
                        *wpm = cJSON_GetObjectItem(v, "psnr_mean");
            if (cJSON_IsString(wpm))
                EXPECT_TRUE(cJSON_IsString(gp) && !strcmp(gp->valuestring, "inf"));
            else EXPECT_LE_F64(fabs(gp->valuedouble - wpm->valuedouble), 1e-4);
            const double wlm = cJSON_GetObjectItem(v, "lpips_mean")->valuedouble;
            EXPECT_LE_F64(fabs(cJSON_GetObjectItem(j, "lpips")->valuedouble - wlm),
                          1e-6 + 1e-5 * wlm);
            const cJSON *ft = cJSON_GetObjectItem(v, "fid_terms");
            const double wf = cJSON_GetObjectItem(v, "fid")->valuedouble;
            const double tol = 5e-6 * (cJSON_GetObjectItem(ft, "trace_sigma_a")->valuedouble +
                                       cJSON_GetObjectItem(ft, "trace_sigma_b")->valuedouble) +
                               1e-5 * wf;
            const double gf = cJSON_GetObjectItem(j, "fid")->valuedouble;
            fprintf(stderr, "  %s: FID %.9g vs %.9g (tol %.3g)\n", cs[k][0], gf, wf, tol);
            EXPECT_LE_F64(fabs(gf - wf), tol);
            // the page lists the pairs by decreasing LPIPS
            char *html = NULL;
            EXPECT_OK(df_read_text_file(page, (size_t)16 << 20, 0, &html, NULL));
            int rows = 0;
            double prev = INFINITY;
            for (const char *q = html ? strstr(html, "alt=\"A ") : NULL; q;
                 q = strstr(q + 1, "alt=\"A ")) {
                const int idx = atoi(q + 7);
                const double lv = cJSON_GetArrayItem(lp, idx)->valuedouble;
                EXPECT_TRUE(lv <= prev);
                prev = lv, rows++;
            }
            EXPECT_EQ_I64(rows, n);
            free(html);
            cJSON_Delete(j);
        }
        free(o), free(e);
    }
    cJSON_Delete(m);
}

static void case_stats(void) {
    make_small_pairs(3);
    const char *fw = dfg_path("metrics/fid_inception_random.safetensors");
    char args[4096], st[512], *o, *e;
    snprintf(st, sizeof st, "%s/a_stats.safetensors", g_tmp);
    snprintf(args, sizeof args,
             "--input-root0 '%s' --input-root1 '%s' --fid-weights '%s' --save-stats '%s' --json",
             tpath("A", NULL), tpath("B", NULL), fw, st);
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    cJSON *j1 = last_json(o);
    free(o), free(e);
    df_fid_stats s;
    EXPECT_OK(df_fid_stats_load(st, &s));
    EXPECT_EQ_I64(s.dim, 2048);
    EXPECT_EQ_I64(s.count, 3);
    df_fid_stats_free(&s);
    // FID only, A from the statistics file
    snprintf(args, sizeof args, "--ref-stats '%s' --input-root1 '%s' --fid-weights '%s' --json", st,
             tpath("B", NULL), fw);
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    cJSON *j2 = last_json(o);
    free(o), free(e);
    // with A's images too (PSNR from them, FID of A from the file)
    snprintf(args, sizeof args,
             "--input-root0 '%s' --ref-stats '%s' --input-root1 '%s' --fid-weights '%s' --json",
             tpath("A", NULL), st, tpath("B", NULL), fw);
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    cJSON *j3 = last_json(o);
    free(o), free(e);
    EXPECT_TRUE(j1 && j2 && j3);
    if (j1 && j2 && j3) {
        const double f1 = cJSON_GetObjectItem(j1, "fid")->valuedouble;
        EXPECT_TRUE(f1 > 0);
        EXPECT_TRUE(cJSON_GetObjectItem(j2, "fid")->valuedouble == f1);
        EXPECT_TRUE(cJSON_GetObjectItem(j3, "fid")->valuedouble == f1);
        EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(j2, "psnr")));
        EXPECT_TRUE(cJSON_GetObjectItem(j3, "psnr")->valuedouble ==
                    cJSON_GetObjectItem(j1, "psnr")->valuedouble);
    }
    cJSON_Delete(j1), cJSON_Delete(j2), cJSON_Delete(j3);
    // not a statistics file
    snprintf(args, sizeof args, "--ref-stats '%s' --input-root1 '%s' --fid-weights '%s'", fw,
             tpath("B", NULL), fw);
    EXPECT_EQ_I64(run(args, &o, &e), 1);
    EXPECT_TRUE(strstr(e, "--ref-stats") != NULL);
    free(o), free(e);
    // one image per folder: FID is not computed (null, with the reason), the rest still runs
    mkdir_p(tpath("A1", NULL)), mkdir_p(tpath("B1", NULL));
    uint8_t *img = rand_img(40, 40);
    write_rgb(tpath("A1", "0.png"), img, 40, 40);
    write_rgb(tpath("B1", "0.png"), img, 40, 40);
    free(img);
    snprintf(args, sizeof args, "--input-root0 '%s' --input-root1 '%s' --fid-weights '%s' --json",
             tpath("A1", NULL), tpath("B1", NULL), fw);
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    EXPECT_TRUE(strstr(o, "FID: not computed: ") && strstr(o, "at least 2"));
    cJSON *j4 = last_json(o);
    EXPECT_TRUE(j4 && cJSON_IsNull(cJSON_GetObjectItem(j4, "fid")) &&
                cJSON_IsString(cJSON_GetObjectItem(j4, "psnr")));
    cJSON_Delete(j4);
    free(o), free(e);
}

static const char *chromium(void) {
    const char *chrome = getenv("DF_CHROMIUM");
    if (!chrome || !*chrome) chrome = "/usr/bin/chromium";
    return access(chrome, X_OK) == 0 ? chrome : NULL;
}

static void case_html(void) {
    const char *chrome = chromium();
    // folders with characters a URL must encode; the page in a third folder
    mkdir_p(tpath("ref #1", NULL)), mkdir_p(tpath("gen 100%", NULL)), mkdir_p(tpath("page", NULL));
    const int n = 5;
    for (int i = 0; i < n; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "img %d.png", i);
        uint8_t *a = rand_img(48 + i, 40), *b = rand_img(48 + i, 40);
        write_rgb(tpath("ref #1", nm), a, 48 + i, 40);
        write_rgb(tpath("gen 100%", nm), b, 48 + i, 40);
        free(a), free(b);
    }
    char args[4096], page[512], *o, *e;
    snprintf(page, sizeof page, "%s/page/side.html", g_tmp);
    snprintf(args, sizeof args,
             "--input-root0 '%s/ref #1' --input-root1 '%s/gen 100%%' --html '%s'", g_tmp, g_tmp,
             page);
    EXPECT_EQ_I64(run(args, &o, &e), 0);
    free(o), free(e);
    char *html = NULL;
    EXPECT_OK(df_read_text_file(page, (size_t)16 << 20, 0, &html, NULL));
    if (!html) return;
    // the page with a counting script appended (same folder: same relative image URLs); the
    // script spells its marker in two parts so that only its output matches
    char check[600];
    snprintf(check, sizeof check, "%s/page/check.html", g_tmp);
    FILE *f = fopen(check, "w");
    fputs(html, f);
    fputs("<script>window.addEventListener('load', function () {"
          " var im = document.getElementsByTagName('img'), k = 0;"
          " for (var i = 0; i < im.length; i++) if (im[i].naturalWidth > 0) k++;"
          " var d = document.createElement('pre'); d.textContent = 'DFC' + 'OUNT=' + k + '/' + "
          "im.length;"
          " document.body.appendChild(d); });</script>\n",
          f);
    fclose(f);
    free(html);
    char cmd[4096];
    snprintf(
        cmd, sizeof cmd,
        "ud=$(mktemp -d) && timeout 120 '%s' --headless --no-sandbox --disable-gpu --disable-quic "
        "--no-first-run --disable-background-networking --disable-component-update --disable-sync "
        "--user-data-dir=\"$ud\" --virtual-time-budget=10000 --dump-dom 'file://%s' 2>/dev/null; "
        "rc=$?; rm -rf \"$ud\"; exit $rc",
        chrome, check);
    FILE *p = popen(cmd, "r");
    char buf[1 << 16];
    size_t len = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[len] = 0;
    const int rc = p ? pclose(p) : -1;
    EXPECT_EQ_I64(rc, 0);
    const char *c = strstr(buf, "DFCOUNT=");
    int loaded = -1, total = -1;
    if (c) sscanf(c, "DFCOUNT=%d/%d", &loaded, &total);
    fprintf(stderr, "chromium: %d of %d img elements decoded (want %d)\n", loaded, total, 2 * n);
    EXPECT_EQ_I64(total, 2 * n);
    EXPECT_EQ_I64(loaded, 2 * n);
}

int main(int argc, char **argv) {
    g_bin = getenv("DF_METRICS_BIN");
    if (argc != 2 || !g_bin) {
        fprintf(stderr, "usage: DF_METRICS_BIN=... %s CASE\n", argv[0]);
        return 2;
    }
    if (!strcmp(argv[1], "html") && !chromium()) {
        fprintf(stderr,
                "SKIP: chromium not found (apt-get install chromium, or set DF_CHROMIUM)\n");
        return 77;
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/df-metrics-cli.XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    const char *c = argv[1];
    int rc = -1;
    if (!strcmp(c, "usage")) case_usage();
    else if (!strcmp(c, "pairing")) case_pairing();
    else if (!strcmp(c, "counts")) case_counts();
    else if (!strcmp(c, "grayscale")) case_grayscale();
    else if (!strcmp(c, "is_gt")) case_is_gt();
    else if (!strcmp(c, "json")) case_json();
    else if (!strcmp(c, "no_weights")) case_no_weights();
    else if (!strcmp(c, "golden_cli") || !strcmp(c, "stats")) {
        if (!golden()) rc = 77;
        else if (!strcmp(c, "stats")) case_stats();
        else case_golden_cli();
    } else if (!strcmp(c, "html")) case_html();
    else {
        fprintf(stderr, "unknown case %s\n", c);
        rc = 2;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_tmp);
    if (rc >= 0) return rc;
    return df_test_result();
}
