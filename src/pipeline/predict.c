// The scaling model of `distrifuse-bench --predict` (include/distrifuse/predict.h).
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
#include "distrifuse/predict.h"

#include "core/core.h"
#include "model/pctx.h"
#include "model/unet.h"
#include "model/unet_tp.h"
#include "runtime/dist.h"

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

// One configuration at N ranks. Returns 0 when the configuration is not possible at N.
static int predict_one(const model_in *m, const df_predict_link *o, double G,
                       df_parallelism par, df_sync_mode mode, int split, df_prediction *out) {
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
    int R = o->ranks_per_node < P ? o->ranks_per_node : P;
    double off = P > 1 ? (double)(P - R) / (P - 1) : 0;
    double link = o->link_gbit * 1e9 / 8;
    double lat = o->latency_us * 1e-6;
    double lg = P > 1 ? ceil(log2((double)P)) : 0;
    double xfer = (v.bytes - 2 * v.ar_bytes_1way) / 2 * R * off / link + v.n_coll * lat * (off > 0);
    double ar = v.ar_bytes_1way * R * off / link + v.n_ar * 2 * lg * lat * (off > 0);
    double step;
    if (async) step = (compute > xfer ? compute : xfer) + ar;
    else step = compute + xfer + ar;
    out->parallelism = par;
    out->sync_mode = mode;
    out->split_batch = split;
    out->step_s = step;
    out->bytes = v.bytes;
    out->speedup = t1 / step;
    out->compute_s = compute;
    out->comm_s = xfer + ar;
    return 1;
}

// slowest link at which patch + corrected_async_gn (split batch as the default chooses: on
// for an even N) still hides its exchange fully; -1 = never (latency alone exceeds the compute)
static double min_hiding(const model_in *m, const df_predict_link *o, double compute_s) {
    int split = o->ranks % 2 == 0;
    int P = split ? o->ranks / 2 : o->ranks, B = split ? 1 : 2;
    volume v = patch_volume(m, P, B, DF_SYNC_CORRECTED_ASYNC_GN, 0);
    int R = o->ranks_per_node < P ? o->ranks_per_node : P;
    double off = P > 1 ? (double)(P - R) / (P - 1) : 0;
    double one = v.bytes / 2 * R * off;
    if (one <= 0) return 0;
    double win = compute_s - v.n_coll * o->latency_us * 1e-6;
    return win > 0 ? one * 8 / win / 1e9 : -1;
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
    for (size_t i = 0; st == DF_OK && i < nx; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 500 - 1;
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

// ---------------------------------------------------------------------------------------------
// The public model

struct df_predict_model {
    df_unet *u;
    recorder r;
    int s0;       // recording latent size
    double G;     // GFLOP/s per rank
    int cal_size; // calibration latent (0: gflops given)
    double cal_s, cal_cpu; // its wall and CPU-per-thread seconds
};

df_status df_predict_create(const char *model, double gflops, df_predict_model **out) {
    DF_FAIL_IF(!model || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    df_predict_model *pm = calloc(1, sizeof *pm);
    DF_FAIL_IF(!pm, DF_ERR_NOMEM, "out of memory");
    df_status st = df_unet_load(model, NULL, &pm->u);
    if (st != DF_OK) {
        free(pm);
        return st;
    }
    const df_unet_config *cfg = df_unet_get_config(pm->u);
    recorder *r = &pm->r;
    r->single = df_pctx_single_ops();
    r->ops = *r->single;
    r->ops.conv_halo = rec_conv;
    r->ops.attn_kv = rec_attn;
    r->ops.gn_stats = rec_gn;
    // layer list at a small latent (2 x the band multiple), batch 1; then the calibration
    const int s0 = 2 * (1 << (cfg->n_levels - 1));
    const int thr = df_get_threads();
    double sec0 = 0, cpu0 = 0, t_start = df_time_s();
    st = record_and_time(pm->u, r, s0, s0, 1, thr, &sec0, &cpu0);
    double G = gflops;
    if (st == DF_OK && G <= 0) {
        // grow the calibration latent (x2 per side, ~4x the work) while a forward there is
        // estimated at <= 24 CPU-s per thread and its two forwards (the first pays the
        // planning) fit in 55 s of wall time in all; G from the CPU seconds of the last forward.
        // The largest size that fits: GEMM efficiency grows with the band (SDXL on this Zen 4:
        // a 32x32 latent gave 83.6 GFLOP/s per thread where the 48x96 bands of a 768x768 run
        // compute at ~97, so the 24 CPU-s bound lets the calibration reach 64x64 there).
        double sec = sec0, cpu = cpu0;
        int s = s0;
        recorder rc2 = *r;
        rc2.op = NULL, rc2.n = rc2.cap = 0;
        while (st == DF_OK && s < 64 && cpu * 4 <= 24 &&
               df_time_s() - t_start + 2 * 4 * sec <= 55) {
            int s2 = 2 * s;
            st = record_and_time(pm->u, &rc2, s2, s2, 1, thr, &sec, &cpu);
            s = s2;
        }
        // time one more forward at the final size (the first one at a size pays the planning)
        if (st == DF_OK) st = record_and_time(pm->u, &rc2, s, s, 1, thr, &sec, &cpu);
        free(rc2.op);
        if (st == DF_OK) {
            G = 2.0 * df_unet_macs(cfg, s, s, 77) / cpu * 1e-9;
            pm->cal_s = sec, pm->cal_cpu = cpu, pm->cal_size = s;
        }
    }
    if (st != DF_OK) {
        df_predict_free(pm);
        return st;
    }
    pm->s0 = s0;
    pm->G = G;
    *out = pm;
    return DF_OK;
}

void df_predict_free(df_predict_model *m) {
    if (!m) return;
    free(m->r.op);
    df_unet_destroy(m->u);
    free(m);
}

double df_predict_gflops(const df_predict_model *m) { return m->G; }
void df_predict_calibration(const df_predict_model *m, int *latent, double *seconds,
                            double *cpu_seconds) {
    *latent = m->cal_size;
    *seconds = m->cal_s;
    if (cpu_seconds) *cpu_seconds = m->cal_cpu;
}
int df_predict_layers(const df_predict_model *m) { return m->r.n; }
int df_predict_default_size(const df_predict_model *m) {
    return df_unet_get_config(m->u)->addition_embed ? 1024 : 512;
}

static model_in model_at(const df_predict_model *m, int width, int height,
                         const df_predict_link *l) {
    model_in mi;
    memset(&mi, 0, sizeof mi);
    mi.r = &m->r;
    mi.cfg = df_unet_get_config(m->u);
    mi.h = height / 8, mi.w = width / 8;
    mi.h0 = mi.w0 = m->s0;
    mi.f16 = l->comm_dtype == DF_COMM_F16;
    mi.halo_nb = l->halo_neighbour;
    mi.mult = 1 << (mi.cfg->n_levels - 1);
    return mi;
}

int df_predict_config(const df_predict_model *m, int width, int height,
                      const df_predict_link *link, df_parallelism par, df_sync_mode mode,
                      int split_batch, df_prediction *out) {
    const model_in mi = model_at(m, width, height, link);
    return predict_one(&mi, link, m->G, par, mode, split_batch, out);
}

double df_predict_min_hiding_gbit(const df_predict_model *m, int width, int height,
                                  const df_predict_link *link, double compute_s) {
    const model_in mi = model_at(m, width, height, link);
    return min_hiding(&mi, link, compute_s);
}
