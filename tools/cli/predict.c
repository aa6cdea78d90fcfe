// distrifuse-bench --predict: a scaling model (issue 8, item 6). Runs no generation.
//
// Bytes: exact, from the layer list of one UNet forward at a small size (a recording patch
// context notes every conv halo, self-attention K/V and GroupNorm statistic the UNet asks for;
// their sizes scale with the image width / band area) and the counting rules of the runtime
// (src/runtime/comm.c, patch.c, tp.c: per rank and step, sent + received):
//   patch, all-gather of P ranks: 2 (P-1) x entry bytes (conv: 2 halo rows x B x pad x W_l x C;
//     attn: K and V, 2 x B x T_band x C; GN: 2 x B x G f64 moments), in the comm dtype (GN f64);
//     GroupNorm all-reduce (sync_gn, and the sync steps of modes without GN slots):
//     2 x 2 (P-1) x (bytes / P); with `--halo neighbour` conv halos go to the two neighbours
//     only: 2 x (2 (P-1) / P, the mean neighbour count) x B x pad x W_l x C.
//   tensor: all-reduces of df_unet_tp_volume floats, 2 x 2 (P-1)/P x 4 bytes per float.
//   naive_patch and one rank per CFG group: 0.
// Time: compute = the model's multiply-adds (df_unet_macs) of the rank's share / G (GFLOP/s per
// rank: --gflops, else measured by calibration forwards of at most ~60 s here, on their CPU
// seconds per thread, so that other load on the machine does not slow the estimate); the link of a
// node carries its ranks' off-node bytes at --link-gbit, plus --link-latency-us per collective
// (x 2 log2 P for an all-reduce). Asynchronous modes hide the exchange behind the compute
// (step = max), synchronous ones add it; sync_gn adds its GroupNorm all-reduces.
#include "predict.h"
#include "runtime/dist.h"

#include "core/core.h"
#include "model/pctx.h"
#include "model/unet.h"
#include "model/unet_tp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { K_CONV, K_ATTN, K_GN };
typedef struct {
    int kind, level, C, pad, G; // level from the width ratio at recording
    double T;                   // attn: tokens of the whole image at the recording size
} rec_op;

typedef struct {
    df_pctx ctx; // first: the ops receive &ctx
    const df_pctx_ops *single;
    df_pctx_ops ops;
    int w0;
    rec_op *op;
    int n, cap;
    int n_allreduce;
    double ar_floats;
} recorder;

static int rec_push(recorder *r, rec_op o) {
    if (r->n == r->cap) {
        int c = r->cap ? 2 * r->cap : 256;
        rec_op *p = realloc(r->op, (size_t)c * sizeof *p);
        if (!p) return -1;
        r->op = p, r->cap = c;
    }
    r->op[r->n++] = o;
    return 0;
}

static int level_of(int w0, int W) {
    int l = 0;
    while ((w0 >> l) > W && l < 30) l++;
    return l;
}

static df_status rec_conv(df_pctx *ctx, int idx, const char *name, const float *x, int B, int H,
                          int W, int C, int pad, const float **top, const float **bot) {
    recorder *r = (recorder *)ctx;
    int is_in = name && strcmp(name, "conv_in") == 0;
    if (!is_in && pad > 0) {
        rec_op o = {K_CONV, level_of(r->w0, W), C, pad, 0, 0};
        DF_FAIL_IF(rec_push(r, o), DF_ERR_NOMEM, "out of memory");
    }
    return r->single->conv_halo(ctx, idx, name, x, B, H, W, C, pad, top, bot);
}

static df_status rec_attn(df_pctx *ctx, int idx, const char *name, const float *k, const float *v,
                          int B, int T, int C, const float **kf, const float **vf, int *Tf) {
    recorder *r = (recorder *)ctx;
    rec_op o = {K_ATTN, 0, C, 0, 0, (double)T};
    DF_FAIL_IF(rec_push(r, o), DF_ERR_NOMEM, "out of memory");
    return r->single->attn_kv(ctx, idx, name, k, v, B, T, C, kf, vf, Tf);
}

static df_status rec_gn(df_pctx *ctx, int idx, const char *name, const double *stats, int B,
                        int G, double count, float *mean, float *var) {
    recorder *r = (recorder *)ctx;
    rec_op o = {K_GN, 0, 0, 0, G, 0};
    DF_FAIL_IF(rec_push(r, o), DF_ERR_NOMEM, "out of memory");
    return r->single->gn_stats(ctx, idx, name, stats, B, G, count, mean, var);
}

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

typedef struct {
    double bytes;        // per rank per step, sent + received
    double node_bytes;   // one direction over the node's link, all its ranks
    double n_coll;       // collectives per step (latency)
    double ar_bytes_1way;// blocking all-reduce bytes one way (sync_gn / tensor)
    double n_ar;         // blocking all-reduces
} volume;

typedef struct {
    const recorder *r;
    const df_unet_config *cfg;
    int h, w;     // target latent
    int h0, w0;   // recording latent
    int f16, halo_nb;
    int mult; // 2^(levels-1): the band height multiple
} model_in;

static int width_at(int w, int l) {
    for (int i = 0; i < l; i++) w = (w + 1) / 2;
    return w;
}

// Patch parallelism, P bands of B images. sync = the step is synchronous.
static volume patch_volume(const model_in *m, int P, int B, df_sync_mode mode, int sync) {
    volume v = {0, 0, 0, 0, 0};
    if (P <= 1) return v;
    double d = m->f16 ? 2 : 4;
    int reg = mode == DF_SYNC_CORRECTED_ASYNC_GN || mode == DF_SYNC_STALE_GN;
    int exchanged = sync || mode != DF_SYNC_NO_SYNC;
    double area = (double)m->h * m->w / ((double)m->h0 * m->w0);
    for (int i = 0; i < m->r->n; i++) {
        const rec_op *o = &m->r->op[i];
        if (o->kind == K_CONV && exchanged) {
            double rows = (double)B * o->pad * width_at(m->w, o->level) * o->C * d;
            v.bytes += m->halo_nb ? 2.0 * (2.0 * (P - 1) / P) * rows : 2.0 * (P - 1) * 2 * rows;
            v.n_coll += 1;
        } else if (o->kind == K_ATTN && exchanged) {
            double T = o->T * area / P;
            v.bytes += 2.0 * (P - 1) * 2 * B * T * o->C * d;
            v.n_coll += 1;
        } else if (o->kind == K_GN) {
            double b = 2.0 * B * o->G * 8;
            if (reg && exchanged) {
                v.bytes += 2.0 * (P - 1) * b;
                v.n_coll += 1;
            } else if (sync || mode == DF_SYNC_SYNC_GN) {
                uint64_t per = 2 * (uint64_t)(P - 1) * (uint64_t)b / (uint64_t)P;
                v.bytes += 2.0 * (double)per;
                v.ar_bytes_1way += (double)per;
                v.n_ar += 1;
            }
        }
    }
    return v;
}

typedef struct {
    const char *par, *sync;
    int split;
    double step_s, bytes, speedup, compute_s, comm_s;
} pred;

// One configuration at N ranks. Returns 0 when the configuration is not possible at N.
static int predict_one(const model_in *m, const popts *o, double G, df_parallelism par,
                       df_sync_mode mode, int split, pred *out) {
    int N = o->ranks;
    if (split && N % 2) return 0;
    int P = split ? N / 2 : N; // ranks per CFG group
    int B = split ? 1 : 2;
    double macs_full = df_unet_macs(m->cfg, m->h, m->w, 77);
    double t1 = 2.0 * macs_full * 2 / (G * 1e9); // one rank, both CFG halves
    double compute = 0;
    volume v = {0, 0, 0, 0, 0};
    int async = 0;
    if (par == DF_PAR_PATCH) {
        if (m->h % (P * m->mult)) return 0; // bands must split at the deepest level
        compute = 2.0 * macs_full * B / P / (G * 1e9);
        int sync = mode == DF_SYNC_FULL_SYNC;
        v = patch_volume(m, P, B, mode, sync);
        async = !sync;
    } else if (par == DF_PAR_NAIVE_PATCH) {
        if (m->h % P) return 0;
        compute = 2.0 * df_unet_macs(m->cfg, m->h / P, m->w, 77) * B / (G * 1e9);
    } else { // tensor
        if (P > 1 && df_unet_tp_check(m->cfg, P) != DF_OK) return 0;
        compute = 2.0 * macs_full * B / P / (G * 1e9);
        if (P > 1) {
            int nar = 0;
            double floats = 0;
            df_unet_tp_volume(m->cfg, B, m->h, m->w, &nar, &floats);
            double per = floats * 4 * 2.0 * (P - 1) / P;
            v.bytes = 2 * per;
            v.ar_bytes_1way = per;
            v.n_ar = nar;
        }
    }
    // the node's link: its R ranks' bytes to ranks on other nodes (block placement)
    int R = o->rpn < P ? o->rpn : P;
    double off = P > 1 ? (double)(P - R) / (P - 1) : 0;
    double link = o->gbit * 1e9 / 8;
    double lat = o->lat_us * 1e-6;
    double lg = P > 1 ? ceil(log2((double)P)) : 0;
    double xfer = (v.bytes - 2 * v.ar_bytes_1way) / 2 * R * off / link + v.n_coll * lat * (off > 0);
    double ar = v.ar_bytes_1way * R * off / link + v.n_ar * 2 * lg * lat * (off > 0);
    double step;
    if (async) step = (compute > xfer ? compute : xfer) + ar;
    else step = compute + xfer + ar;
    out->par = df_parallelism_name(par);
    out->sync = par == DF_PAR_PATCH ? df_sync_mode_name(mode) : "-";
    out->split = split;
    out->step_s = step;
    out->bytes = v.bytes;
    out->speedup = t1 / step;
    out->compute_s = compute;
    out->comm_s = xfer + ar;
    return 1;
}

// slowest link at which patch + corrected_async_gn (split batch as the default chooses: on
// for an even N) still hides its exchange fully; -1 = never (latency alone exceeds the compute)
static double min_hiding(const model_in *m, const popts *o, double compute_s) {
    int split = o->ranks % 2 == 0;
    int P = split ? o->ranks / 2 : o->ranks, B = split ? 1 : 2;
    volume v = patch_volume(m, P, B, DF_SYNC_CORRECTED_ASYNC_GN, 0);
    int R = o->rpn < P ? o->rpn : P;
    double off = P > 1 ? (double)(P - R) / (P - 1) : 0;
    double one = v.bytes / 2 * R * off;
    if (one <= 0) return 0;
    double win = compute_s - v.n_coll * o->lat_us * 1e-6;
    return win > 0 ? one * 8 / win / 1e9 : -1;
}

// Predictions of every configuration; the table (unless quiet) and one JSON line (with `pre`,
// extra leading keys, in sweep mode).
static void emit(const model_in *m, const popts *o, double G, const char *pre) {
    static const df_parallelism pars[] = {DF_PAR_PATCH, DF_PAR_NAIVE_PATCH, DF_PAR_TENSOR};
    pred pr[64];
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
                pred p;
                if (np == 64 || !predict_one(m, o, G, pars[pi], (df_sync_mode)mi, split, &p))
                    continue;
                pr[np++] = p;
                if (!o->quiet)
                    printf("  %-12s %-19s %-5s %10.3f %10.3f %10.3f %14.2f %7.2fx\n", p.par,
                           p.sync, split ? "on" : "off", p.step_s, p.compute_s, p.comm_s,
                           p.bytes / 1048576.0, p.speedup);
                if (pars[pi] == DF_PAR_PATCH && mi == DF_SYNC_CORRECTED_ASYNC_GN &&
                    split == (o->ranks % 2 == 0))
                    hide = min_hiding(m, o, p.compute_s);
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
    for (int i = 0; i < np; i++)
        printf("%s{\"parallelism\": \"%s\", \"sync_mode\": %s%s%s, \"split_batch\": %s, "
               "\"step_s\": %.6g, \"bytes_per_rank_per_step\": %.0f, \"speedup\": %.4g}",
               i ? ", " : "", pr[i].par, pr[i].sync[0] == '-' ? "" : "\"",
               pr[i].sync[0] == '-' ? "null" : pr[i].sync, pr[i].sync[0] == '-' ? "" : "\"",
               pr[i].split ? "true" : "false", pr[i].step_s, pr[i].bytes, pr[i].speedup);
    if (hide >= 0) printf("], \"min_hiding_gbit\": %.6g}\n", hide);
    else printf("], \"min_hiding_gbit\": null}\n");
    fflush(stdout);
}

// process CPU seconds: the calibration's measure of work (a busy machine stretches the wall
// clock of a forward, not its CPU seconds)
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// One forward at h x w (B images) through the recorder: wall seconds in *sec, CPU seconds per
// thread in *cpu (threads: the forward's thread count).
static df_status record_and_time(df_unet *u, recorder *r, int h, int w, int B, int threads,
                                 double *sec, double *cpu) {
    const df_unet_config *c = df_unet_get_config(u);
    DF_TRY(df_unet_plan(u, B, h, w, h));
    int T = 77;
    size_t ne = (size_t)B * T * c->cross_attention_dim;
    float *enc = calloc(ne, sizeof *enc);
    float *pooled = calloc((size_t)B * (c->text_embeds_dim > 0 ? c->text_embeds_dim : 1), 4);
    float *tids = calloc((size_t)B * (c->n_time_ids > 0 ? c->n_time_ids : 1), 4);
    size_t nx = (size_t)B * h * w * c->in_channels, ny = (size_t)B * h * w * c->out_channels;
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y);
    df_status st = DF_OK;
    if (!enc || !pooled || !tids || !x || !y) st = DF_ERROR(DF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == DF_OK && i < nx; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500 - 1;
    if (st == DF_OK) st = df_unet_set_text(u, B, enc, T, pooled, tids);
    float t[2] = {500, 500};
    if (st == DF_OK) {
        df_pctx_single_init(&r->ctx, h);
        r->ctx.ops = &r->ops;
        r->n = 0;
        r->w0 = w;
        double t0 = df_time_s(), c0 = cpu_s();
        st = df_unet_forward(u, &r->ctx, x, t, y);
        *sec = df_time_s() - t0;
        *cpu = (cpu_s() - c0) / (threads > 0 ? threads : 1);
    }
    free(enc), free(pooled), free(tids), free(x), free(y);
    return st;
}

int df_bench_predict(int argc, char **argv) {
    popts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    // threads matter only for the calibration (with --gflops the recording forward is tiny)
    df_set_threads(o.gflops > 0 ? 1 : o.threads);
    df_unet *u = NULL;
    if (df_unet_load(o.model, NULL, &u) != DF_OK) {
        fprintf(stderr, "distrifuse-bench --predict: cannot load the UNet of '%s': %s\n", o.model,
                df_last_error());
        return 1;
    }
    const df_unet_config *cfg = df_unet_get_config(u);
    int mult = 1 << (cfg->n_levels - 1);
    int px = cfg->addition_embed ? 1024 : 512; // the model defaults: SDXL 1024, SD 1.x 512
    if (!o.W) o.W = px;
    if (!o.H) o.H = px;
    if (o.W % 8 || o.H % 8) {
        df_unet_destroy(u);
        return usage("-W and -H must be multiples of 8");
    }
    model_in m = {0};
    recorder r;
    memset(&r, 0, sizeof r);
    r.single = df_pctx_single_ops();
    r.ops = *r.single;
    r.ops.conv_halo = rec_conv;
    r.ops.attn_kv = rec_attn;
    r.ops.gn_stats = rec_gn;
    // layer list at a small latent (2 x the band multiple), batch 1; then the calibration
    int s0 = 2 * mult, thr = o.gflops > 0 ? 1 : o.threads;
    double sec0 = 0, cpu0 = 0, t_start = df_time_s();
    df_status st = record_and_time(u, &r, s0, s0, 1, thr, &sec0, &cpu0);
    double G = o.gflops, cal_s = sec0, cal_cpu = cpu0;
    int cal_size = s0;
    if (st == DF_OK && G <= 0) {
        // grow the calibration latent (x2 per side, ~4x the work) while a forward there is
        // estimated at <= 16 CPU-s per thread and its two forwards (the first pays the
        // planning) fit in 55 s of wall time in all; G from the CPU seconds of the last forward
        double sec = sec0, cpu = cpu0;
        int s = s0;
        recorder rc2 = r;
        rc2.op = NULL, rc2.n = rc2.cap = 0;
        while (st == DF_OK && s < 64 && cpu * 4 <= 16 &&
               df_time_s() - t_start + 2 * 4 * sec <= 55) {
            int s2 = 2 * s;
            st = record_and_time(u, &rc2, s2, s2, 1, thr, &sec, &cpu);
            s = s2;
        }
        // time one more forward at the final size (the first one at a size pays the planning)
        if (st == DF_OK) st = record_and_time(u, &rc2, s, s, 1, thr, &sec, &cpu);
        free(rc2.op);
        if (st == DF_OK) {
            G = 2.0 * df_unet_macs(cfg, s, s, 77) / cpu * 1e-9;
            cal_s = sec, cal_cpu = cpu, cal_size = s;
        }
    }
    if (st != DF_OK) {
        fprintf(stderr, "distrifuse-bench --predict: UNet forward failed: %s\n", df_last_error());
        free(r.op);
        df_unet_destroy(u);
        return 1;
    }
    m.r = &r;
    m.cfg = cfg;
    m.h = o.H / 8, m.w = o.W / 8;
    m.h0 = m.w0 = s0;
    m.f16 = o.f16, m.halo_nb = o.halo_nb;
    m.mult = mult;
    if (!o.quiet) {
        if (o.gflops > 0) printf("distrifuse-bench --predict: compute %.1f GFLOP/s per rank "
                                 "(--gflops)\n", G);
        else
            printf("distrifuse-bench --predict: compute %.1f GFLOP/s per rank (calibration: one "
                   "forward at %dx%d latent, %.2f CPU-s per thread, %.2f s wall)\n", G, cal_size,
                   cal_size, cal_cpu, cal_s);
        printf("  layer list: %d exchanged layers per forward\n", r.n);
    }
    if (!o.sweep) {
        m.h = o.H / 8, m.w = o.W / 8;
        emit(&m, &o, G, NULL);
    } else {
        for (int a = 0; a < o.n_sizes; a++)
            for (int b = 0; b < o.n_sranks; b++)
                for (int c = 0; c < o.n_sgbit; c++) {
                    popts q = o;
                    q.W = q.H = o.sizes[a];
                    q.ranks = o.sranks[b];
                    q.gbit = o.sgbit[c];
                    m.h = q.H / 8, m.w = q.W / 8;
                    char pre[160];
                    snprintf(pre, sizeof pre, "\"width\": %d, \"height\": %d, \"ranks\": %d, "
                             "\"link_gbit\": %g, ", q.W, q.H, q.ranks, q.gbit);
                    emit(&m, &q, G, pre);
                }
    }
    free(r.op);
    df_unet_destroy(u);
    return 0;
}
