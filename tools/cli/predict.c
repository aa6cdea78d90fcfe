// distrifuse-bench --predict: a scaling model (issue 8, item 6). Runs no generation. The model
// itself (the exact bytes plan of one forward and the time model) is the library's
// (distrifuse/predict.h); this file parses the options and prints the table and the JSON.
#include "predict.h"

#include "distrifuse/predict.h"
#include "distrifuse/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------

typedef struct {
    const char *model;
    int W, H, ranks, rpn, threads, quiet;
    double gbit, lat_us, gflops;
    int f16, halo_nb;
    int sweep, n_sizes, n_sranks, n_sgbit; // --sweep-*: lists (one JSON line per combination)
    int sizes[16], sranks[16];
    double sgbit[16];
} popts;

static int usage(const char *msg) {
    fprintf(stderr, "distrifuse-bench --predict: %s\n", msg);
    return 2;
}

static int parse(int argc, char **argv, popts *o) {
    memset(o, 0, sizeof *o);
    o->W = o->H = 0;
    o->ranks = 2, o->rpn = 1, o->threads = 1;
    o->gbit = 10, o->lat_us = 20, o->gflops = 0;
    o->halo_nb = 1; // the runtime sends conv halos to the two neighbours only
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                                                \
    do {                                                                                       \
        if (!v) {                                                                              \
            fprintf(stderr, "distrifuse-bench --predict: %s needs a value\n", a);              \
            return 2;                                                                          \
        }                                                                                      \
        i++;                                                                                   \
    } while (0)
        char *end = NULL;
        if (strcmp(a, "--predict") == 0 || strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            if (a[1] == 'q' || a[2] == 'q') o->quiet = 1;
        } else if (strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) {
            NEEDV();
            o->model = v;
        } else if (strcmp(a, "--arch") == 0) {
            NEEDV();
            return usage("--arch needs weights for the layer list here: give -m MODEL "
                         "(build/tools/df-make-model --arch sdxl|sd15 --out DIR makes one)");
        } else if (strcmp(a, "-W") == 0 || strcmp(a, "--width") == 0 || strcmp(a, "-H") == 0 ||
                   strcmp(a, "--height") == 0 || strcmp(a, "--ranks") == 0 ||
                   strcmp(a, "--ranks-per-node") == 0 || strcmp(a, "-t") == 0 ||
                   strcmp(a, "--threads") == 0) {
            NEEDV();
            long n = strtol(v, &end, 10);
            if (!*v || *end || n < 0 || n > 1000000) {
                fprintf(stderr, "distrifuse-bench --predict: %s: bad number '%s'\n", a, v);
                return 2;
            }
            if (a[1] == 'W' || strcmp(a, "--width") == 0) o->W = (int)n;
            else if (a[1] == 'H' || strcmp(a, "--height") == 0) o->H = (int)n;
            else if (strcmp(a, "--ranks") == 0) o->ranks = (int)n;
            else if (strcmp(a, "--ranks-per-node") == 0) o->rpn = (int)n;
            else o->threads = (int)n;
        } else if (strcmp(a, "--link-gbit") == 0 || strcmp(a, "--link-latency-us") == 0 ||
                   strcmp(a, "--gflops") == 0) {
            NEEDV();
            double d = strtod(v, &end);
            if (!*v || *end || !(d >= 0) || !isfinite(d)) {
                fprintf(stderr, "distrifuse-bench --predict: %s: bad number '%s'\n", a, v);
                return 2;
            }
            if (strcmp(a, "--link-gbit") == 0) o->gbit = d;
            else if (strcmp(a, "--link-latency-us") == 0) o->lat_us = d;
            else o->gflops = d;
        } else if (strcmp(a, "--sweep-sizes") == 0 || strcmp(a, "--sweep-ranks") == 0 ||
                   strcmp(a, "--sweep-gbit") == 0) {
            NEEDV();
            int n = 0;
            const char *q = v;
            while (*q) {
                double d = strtod(q, &end);
                if (end == q || !(d > 0) || n == 16 || (*end && *end != ',')) {
                    fprintf(stderr, "distrifuse-bench --predict: %s: bad list '%s' (up to 16 "
                            "positive numbers, comma-separated)\n", a, v);
                    return 2;
                }
                if (a[8] == 's') o->sizes[n] = (int)d;
                else if (a[8] == 'r') o->sranks[n] = (int)d;
                else o->sgbit[n] = d;
                n++;
                q = *end ? end + 1 : end;
            }
            if (a[8] == 's') o->n_sizes = n;
            else if (a[8] == 'r') o->n_sranks = n;
            else o->n_sgbit = n;
            o->sweep = 1;
        } else if (strcmp(a, "--comm-dtype") == 0) {
            NEEDV();
            if (strcmp(v, "f16") == 0) o->f16 = 1;
            else if (strcmp(v, "f32") == 0) o->f16 = 0;
            else return usage("--comm-dtype must be f32 or f16");
        } else if (strcmp(a, "--halo") == 0) {
            NEEDV();
            if (strcmp(v, "neighbour") == 0) o->halo_nb = 1;
            else if (strcmp(v, "allgather") == 0) o->halo_nb = 0;
            else return usage("--halo must be allgather or neighbour");
        } else {
            fprintf(stderr, "distrifuse-bench --predict: unknown option '%s' (--predict takes -m, "
                    "-W, -H, --ranks, --ranks-per-node, -t, --link-gbit, --link-latency-us, "
                    "--gflops, --comm-dtype, --halo, --sweep-sizes, --sweep-ranks, --sweep-gbit, "
                    "-q)\n", a);
            return 2;
        }
#undef NEEDV
    }
    if (!o->model) return usage("-m MODEL is required");
    if (o->sweep) { // unset lists: the single values
        if (!o->n_sizes) {
            if (o->W != o->H || !o->W) return usage("--sweep-* needs --sweep-sizes or -W = -H");
            o->sizes[0] = o->W, o->n_sizes = 1;
        }
        if (!o->n_sranks) o->sranks[0] = o->ranks, o->n_sranks = 1;
        if (!o->n_sgbit) o->sgbit[0] = o->gbit, o->n_sgbit = 1;
        for (int i = 0; i < o->n_sizes; i++)
            if (o->sizes[i] % 8) return usage("--sweep-sizes: multiples of 8");
    }
    if (o->ranks < 1) return usage("--ranks must be >= 1");
    if (o->rpn < 1) return usage("--ranks-per-node must be >= 1");
    if (o->gbit <= 0) return usage("--link-gbit must be > 0");
    if (o->threads < 1) return usage("-t must be >= 1 (threads per rank; 0 is not modelled)");
    return 0;
}

// The sync mode column: patch parallelism only ("-" otherwise).
static const char *sync_name(const df_prediction *p) {
    return p->parallelism == DF_PAR_PATCH ? df_sync_mode_name(p->sync_mode) : "-";
}

// Predictions of every configuration; the table (unless quiet) and one JSON line (with `pre`,
// extra leading keys, in sweep mode).
static void emit(const df_predict_model *m, const popts *o, const char *pre) {
    static const df_parallelism pars[] = {DF_PAR_PATCH, DF_PAR_NAIVE_PATCH, DF_PAR_TENSOR};
    const df_predict_link link = {.ranks = o->ranks, .ranks_per_node = o->rpn,
                                  .link_gbit = o->gbit, .latency_us = o->lat_us,
                                  .comm_dtype = o->f16 ? DF_COMM_F16 : DF_COMM_F32,
                                  .halo_neighbour = o->halo_nb};
    df_prediction pr[64];
    int np = 0;
    double hide = -2; // -2: no patch + corrected_async_gn configuration at this N and size
    if (!o->quiet) {
        printf("%dx%d, %d ranks (%d per node), %d thread(s) per rank, links %.3g Gbit/s, "
               "%.3g us per collective, comm %s, halos %s\n", o->W, o->H, o->ranks, o->rpn,
               o->threads, o->gbit, o->lat_us, o->f16 ? "f16" : "f32",
               o->halo_nb ? "to the neighbours" : "in the all-gather");
        printf("  %-12s %-19s %-5s %10s %10s %10s %14s %8s\n", "parallelism", "sync_mode",
               "split", "step s", "compute s", "comm s", "MiB/rank/step", "speedup");
    }
    for (int pi = 0; pi < 3; pi++) {
        int nmodes = pars[pi] == DF_PAR_PATCH ? DF_SYNC_COUNT : 1;
        for (int mi = 0; mi < nmodes; mi++) {
            for (int split = 1; split >= 0; split--) {
                df_prediction p;
                if (np == 64 || !df_predict_config(m, o->W, o->H, &link, pars[pi],
                                                   (df_sync_mode)mi, split, &p))
                    continue;
                pr[np++] = p;
                if (!o->quiet)
                    printf("  %-12s %-19s %-5s %10.3f %10.3f %10.3f %14.2f %7.2fx\n",
                           df_parallelism_name(p.parallelism), sync_name(&p),
                           split ? "on" : "off", p.step_s, p.compute_s, p.comm_s,
                           p.bytes / 1048576.0, p.speedup);
                if (pars[pi] == DF_PAR_PATCH && mi == DF_SYNC_CORRECTED_ASYNC_GN &&
                    split == (o->ranks % 2 == 0))
                    hide = df_predict_min_hiding_gbit(m, o->W, o->H, &link, p.compute_s);
            }
        }
    }
    if (!o->quiet) {
        if (hide >= 0)
            printf("  patch + corrected_async_gn (split batch %s) hides its exchange fully on "
                   "links of >= %.3f Gbit/s\n", o->ranks % 2 == 0 ? "on" : "off", hide);
        else if (hide == -1)
            printf("  patch + corrected_async_gn: the per-collective latency alone exceeds the "
                   "compute; no link hides it\n");
    }
    printf("{%s\"predictions\": [", pre ? pre : "");
    for (int i = 0; i < np; i++) {
        const char *sy = sync_name(&pr[i]);
        printf("%s{\"parallelism\": \"%s\", \"sync_mode\": %s%s%s, \"split_batch\": %s, "
               "\"step_s\": %.6g, \"bytes_per_rank_per_step\": %.0f, \"speedup\": %.4g}",
               i ? ", " : "", df_parallelism_name(pr[i].parallelism), sy[0] == '-' ? "" : "\"",
               sy[0] == '-' ? "null" : sy, sy[0] == '-' ? "" : "\"",
               pr[i].split_batch ? "true" : "false", pr[i].step_s, pr[i].bytes, pr[i].speedup);
    }
    if (hide >= 0) printf("], \"min_hiding_gbit\": %.6g}\n", hide);
    else printf("], \"min_hiding_gbit\": null}\n");
    fflush(stdout);
}

int df_bench_predict(int argc, char **argv) {
    popts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    // threads matter only for the calibration (with --gflops the recording forward is tiny)
    df_set_threads(o.gflops > 0 ? 1 : o.threads);
    df_predict_model *m = NULL;
    if (df_predict_create(o.model, o.gflops, &m) != DF_OK) {
        fprintf(stderr, "distrifuse-bench --predict: cannot load the UNet of '%s': %s\n",
                o.model, df_last_error());
        return 1;
    }
    const int px = df_predict_default_size(m); // the model defaults: SDXL 1024, SD 1.x 512
    if (!o.W) o.W = px;
    if (!o.H) o.H = px;
    if (o.W % 8 || o.H % 8) {
        df_predict_free(m);
        return usage("-W and -H must be multiples of 8");
    }
    if (!o.quiet) {
        const double G = df_predict_gflops(m);
        int cal_size;
        double cal_s, cal_cpu;
        df_predict_calibration(m, &cal_size, &cal_s, &cal_cpu);
        if (o.gflops > 0) printf("distrifuse-bench --predict: compute %.1f GFLOP/s per rank "
                                 "(--gflops)\n", G);
        else
            printf("distrifuse-bench --predict: compute %.1f GFLOP/s per rank (calibration: one "
                   "forward at %dx%d latent, %.2f CPU-s per thread, %.2f s wall)\n", G,
                   cal_size, cal_size, cal_cpu, cal_s);
        printf("  layer list: %d exchanged layers per forward\n", df_predict_layers(m));
    }
    if (!o.sweep) {
        emit(m, &o, NULL);
    } else {
        for (int a = 0; a < o.n_sizes; a++)
            for (int b = 0; b < o.n_sranks; b++)
                for (int c = 0; c < o.n_sgbit; c++) {
                    popts q = o;
                    q.W = q.H = o.sizes[a];
                    q.ranks = o.sranks[b];
                    q.gbit = o.sgbit[c];
                    char pre[160];
                    snprintf(pre, sizeof pre, "\"width\": %d, \"height\": %d, \"ranks\": %d, "
                             "\"link_gbit\": %g, ", q.W, q.H, q.ranks, q.gbit);
                    emit(m, &q, pre);
                }
    }
    df_predict_free(m);
    return 0;
}
