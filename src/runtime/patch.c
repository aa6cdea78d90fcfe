// DistriFusion patch context: see patch.h and spec §2-§3.
#include "runtime/patch.h"

#include "runtime/bands.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum op_kind { OP_CONV_IN = 0, OP_CONV, OP_ATTN, OP_GN } op_kind;
static const char *const k_op_names[] = {"conv_in", "conv", "attention", "group_norm"};

// One pctx call of the planned forward.
typedef struct op {
    op_kind kind;
    int unet_idx;   // idx the model passed
    int entry;      // comm entry, -1 if not exchanged
    int a, b, c, d, e; // shape: conv (B,H,W,C,pad), attn (B,T,C), gn (B,G)
    char name[112];
} op;

struct df_patch {
    df_pctx ctx;
    df_dist_params prm;
    df_comm *comm;
    int P, me;
    df_xchg *x;
    // band plan: deep[j] rows of patch j at the deepest level (D in all), start[j] its first
    // latent row; even = all bands equal (then the arithmetic is exactly the pre-band one)
    int *deep, *start, D, dmax, n_down, even;

    op *ops;
    int n_ops, cap_ops;
    int planned;     // the planning forward finished (plan committed)
    int in_step;     // between begin and end
    int planning;    // the current forward is the planning forward
    int step, sync;
    int call;        // pctx calls so far in this forward
    df_status sticky; // first error of this forward

    // step input (conv_in)
    const float *x_full; // [B][H][W][Cin]
    int xB, xH, xW, xC;

    // scratch (grown during planning; no allocation afterwards)
    float *halo;  size_t halo_cap;  // [2][B][pad][W][C]
    float *kv;    size_t kv_cap;    // [2][B][T_full][C]
    double *gn;   size_t gn_cap;    // [B][G][2]

    // trace
    int tr_steps;
    uint64_t *tr_sent;   // [tr_steps][n_entries][2]
    uint64_t *tr_read;   // [tr_steps][n_entries][P]
    uint64_t *pl_sent;   // planning forward: [cap][2]
    uint64_t *pl_read;   // [cap][P]
    int pl_cap;
};

// ---------------------------------------------------------------------------------------------
// helpers

static int gn_registered(df_sync_mode m) {
    return m == DF_SYNC_CORRECTED_ASYNC_GN || m == DF_SYNC_STALE_GN;
}

static df_status grow(void **p, size_t *cap, size_t bytes, int planning) {
    if (bytes <= *cap) return DF_OK;
    if (!planning)
        return DF_ERROR(DF_ERR_INTERNAL, "scratch of %zu bytes needed after planning (had %zu)",
                        bytes, *cap);
    void *n = df_malloc(bytes);
    DF_FAIL_IF(!n, DF_ERR_NOMEM, "cannot allocate %zu bytes of patch scratch", bytes);
    df_free(*p);
    *p = n;
    *cap = bytes;
    return DF_OK;
}

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h | 1; // never 0 (0 = "not recorded")
}

// f32 -> slot dtype
static void put(void *dst, size_t doff, const float *src, size_t n, df_comm_dtype t) {
    if (t == DF_COMM_F16) {
        uint16_t *d = (uint16_t *)dst + doff;
        for (size_t i = 0; i < n; i++) d[i] = df_f32_to_f16(src[i]);
    } else {
        memcpy((float *)dst + doff, src, n * sizeof(float));
    }
}

// slot dtype -> f32
static void get(float *dst, const void *src, size_t soff, size_t n, df_comm_dtype t) {
    if (t == DF_COMM_F16) {
        const uint16_t *s = (const uint16_t *)src + soff;
        for (size_t i = 0; i < n; i++) dst[i] = df_f16_to_f32(s[i]);
    } else {
        memcpy(dst, (const float *)src + soff, n * sizeof(float));
    }
}

static size_t entry_bytes(const df_patch *pp, int e) {
    return df_xchg_entry_elems(pp->x, e) * df_comm_dtype_size(df_xchg_entry_dtype(pp->x, e));
}

// Records what this rank published for entry e: h0 = the part for the band above, h1 = the
// part for the band below (conv halos: top rows, bottom rows; other entries: the whole slot).
static void trace_sent2(df_patch *pp, int e, uint64_t h0, uint64_t h1) {
    uint64_t *d = NULL;
    if (pp->planning) {
        if (e < pp->pl_cap) d = pp->pl_sent + 2 * (size_t)e;
    } else if (pp->step < pp->tr_steps) {
        d = pp->tr_sent + 2 * ((size_t)pp->step * df_xchg_count(pp->x) + e);
    }
    if (d) d[0] = h0, d[1] = h1;
}

static void trace_sent(df_patch *pp, int e) { // whole own slot
    if (!pp->tr_steps) return;
    uint64_t h = fnv1a(df_xchg_slot(pp->x, e, pp->me), entry_bytes(pp, e));
    trace_sent2(pp, e, h, h);
}

static void trace_sent_halo(df_patch *pp, int e, const void *top, const void *bot, size_t n) {
    if (!pp->tr_steps) return;
    trace_sent2(pp, e, fnv1a(top, n), fnv1a(bot, n));
}

// Records the bytes read from patch j for entry e (p = NULL: the whole slot j).
static void trace_read_bytes(df_patch *pp, int e, int j, const void *p, size_t bytes) {
    if (!pp->tr_steps) return;
    uint64_t h = fnv1a(p, bytes);
    if (pp->planning) {
        if (e < pp->pl_cap) pp->pl_read[(size_t)e * pp->P + j] = h;
    } else if (pp->step < pp->tr_steps) {
        pp->tr_read[((size_t)pp->step * df_xchg_count(pp->x) + e) * pp->P + j] = h;
    }
}

static void trace_read(df_patch *pp, int e, int j) {
    if (!pp->tr_steps) return;
    trace_read_bytes(pp, e, j, df_xchg_slot(pp->x, e, j), entry_bytes(pp, e));
}

static df_status trace_plan_reserve(df_patch *pp, int e) {
    if (!pp->tr_steps || e < pp->pl_cap) return DF_OK;
    int nc = pp->pl_cap ? 2 * pp->pl_cap : 128;
    while (nc <= e) nc *= 2;
    uint64_t *s = calloc(2 * (size_t)nc, sizeof *s);
    uint64_t *r = calloc((size_t)nc * pp->P, sizeof *r);
    if (!s || !r) {
        free(s);
        free(r);
        return DF_ERROR(DF_ERR_NOMEM, "out of memory (trace)");
    }
    if (pp->pl_cap) {
        memcpy(s, pp->pl_sent, 2 * (size_t)pp->pl_cap * sizeof *s);
        memcpy(r, pp->pl_read, (size_t)pp->pl_cap * pp->P * sizeof *r);
    }
    free(pp->pl_sent);
    free(pp->pl_read);
    pp->pl_sent = s;
    pp->pl_read = r;
    pp->pl_cap = nc;
    return DF_OK;
}

// Matches (or, when planning, records) call number pp->call. Returns the op.
static df_status next_op(df_patch *pp, op_kind kind, int idx, const char *name, int a, int b,
                         int c, int d, int e, op **out) {
    DF_FAIL_IF(!pp->in_step, DF_ERR_INTERNAL, "patch context used outside a step ('%s')", name);
    int k = pp->call++;
    if (pp->planning) {
        if (pp->n_ops == pp->cap_ops) {
            int nc = pp->cap_ops ? 2 * pp->cap_ops : 128;
            op *n = realloc(pp->ops, (size_t)nc * sizeof *n);
            DF_FAIL_IF(!n, DF_ERR_NOMEM, "out of memory");
            pp->ops = n;
            pp->cap_ops = nc;
        }
        op *o = &pp->ops[pp->n_ops++];
        memset(o, 0, sizeof *o);
        o->kind = kind;
        o->unet_idx = idx;
        o->entry = -1;
        o->a = a, o->b = b, o->c = c, o->d = d, o->e = e;
        snprintf(o->name, sizeof o->name, "%s", name ? name : "");
        *out = o;
        return DF_OK;
    }
    DF_FAIL_IF(k >= pp->n_ops, DF_ERR_INTERNAL,
               "layer sequence changed after planning: call %d ('%s') beyond the %d planned "
               "calls",
               k, name, pp->n_ops);
    op *o = &pp->ops[k];
    if (o->kind != kind || o->unet_idx != idx || strcmp(o->name, name ? name : "") != 0 ||
        o->a != a || o->b != b || o->c != c || o->d != d || o->e != e)
        return DF_ERROR(DF_ERR_INTERNAL,
                        "layer sequence changed after planning: call %d is %s '%s' idx %d "
                        "[%d,%d,%d,%d,%d], planned %s '%s' idx %d [%d,%d,%d,%d,%d]",
                        k, k_op_names[kind], name, idx, a, b, c, d, e, k_op_names[o->kind],
                        o->name, o->unet_idx, o->a, o->b, o->c, o->d, o->e);
    *out = o;
    return DF_OK;
}

static df_status poll(df_patch *pp) {
    if (pp->planning || pp->sync) return DF_OK;
    return df_xchg_progress(pp->x);
}

#define STICKY(pp, expr)                                                                       \
    do {                                                                                       \
        df_status st_ = (expr);                                                                \
        if (st_ != DF_OK) {                                                                    \
            if ((pp)->sticky == DF_OK) (pp)->sticky = st_;                                     \
            return st_;                                                                        \
        }                                                                                      \
    } while (0)

// ---------------------------------------------------------------------------------------------
// conv halo

static df_status conv_in_halo(df_patch *pp, const float *x, int B, int H, int W, int C, int pad,
                              const float **top, const float **bot) {
    DF_FAIL_IF(!pp->x_full, DF_ERR_INTERNAL, "conv_in halo requested but no full input was set");
    DF_FAIL_IF(B != pp->xB || W != pp->xW || C != pp->xC || H != pp->ctx.row1 - pp->ctx.row0,
               DF_ERR_SHAPE,
               "conv_in input [%d][%d][%d][%d] does not match the band [%d][%d][%d][%d] of the "
               "model input",
               B, H, W, C, pp->xB, pp->ctx.row1 - pp->ctx.row0, pp->xW, pp->xC);
    size_t rows = (size_t)pad * W * C; // one image's halo
    DF_TRY(grow((void **)&pp->halo, &pp->halo_cap, 2 * (size_t)B * rows * sizeof(float),
                pp->planning));
    float *t = pp->halo, *bo = pp->halo + (size_t)B * rows;
    int r0 = pp->ctx.row0, r1 = pp->ctx.row1, Hf = pp->xH;
    size_t img = (size_t)Hf * W * C, row = (size_t)W * C;
    for (int b = 0; b < B; b++) {
        for (int p = 0; p < pad; p++) {
            int ya = r0 - pad + p, yb = r1 + p;
            float *da = t + (size_t)b * rows + (size_t)p * row;
            float *db = bo + (size_t)b * rows + (size_t)p * row;
            if (ya >= 0) memcpy(da, pp->x_full + b * img + (size_t)ya * row, row * sizeof(float));
            else memset(da, 0, row * sizeof(float));
            if (yb < Hf) memcpy(db, pp->x_full + b * img + (size_t)yb * row, row * sizeof(float));
            else memset(db, 0, row * sizeof(float));
        }
    }
    *top = r0 > 0 ? t : NULL;
    *bot = r1 < Hf ? bo : NULL;
    (void)x;
    return DF_OK;
}

static df_status conv_halo_impl(df_patch *pp, int idx, const char *name, const float *x, int B,
                                int H, int W, int C, int pad, const float **top,
                                const float **bot) {
    *top = *bot = NULL;
    DF_TRY(poll(pp));
    int is_in = name && strcmp(name, "conv_in") == 0;
    op *o;
    DF_TRY(next_op(pp, is_in ? OP_CONV_IN : OP_CONV, idx, name, B, H, W, C, pad, &o));
    if (is_in) return conv_in_halo(pp, x, B, H, W, C, pad, top, bot);
    if (pad == 0) return DF_OK;
    DF_FAIL_IF(H < pad, DF_ERR_SHAPE, "%s: band of %d rows is thinner than the halo (%d)", name,
               H, pad);
    size_t rows = (size_t)pad * W * C;         // one image's halo rows
    size_t part = (size_t)B * rows;            // [B][pad][W][C]
    if (pp->planning) {
        if (pp->prm.halo_allgather)
            DF_TRY(df_xchg_register(pp->x, name, DF_XKIND_CONV, 2 * part, pp->prm.comm_dtype,
                                    &o->entry));
        else
            DF_TRY(df_xchg_register_halo(pp->x, name, part, pp->prm.comm_dtype, &o->entry));
        DF_TRY(trace_plan_reserve(pp, o->entry));
    }
    int e = o->entry;
    df_comm_dtype dt = df_xchg_entry_dtype(pp->x, e);
    DF_TRY(grow((void **)&pp->halo, &pp->halo_cap, 2 * part * sizeof(float), pp->planning));
    size_t img = (size_t)H * W * C, row = (size_t)W * C;
    int up = pp->me - 1, dn = pp->me + 1;
    size_t pbytes = part * df_comm_dtype_size(dt);
    if (df_xchg_is_halo(pp->x, e)) { // neighbours only (point to point)
        df_xchg *xx = pp->x;
        void *st = df_xchg_halo_send(xx, e, 0), *sb = df_xchg_halo_send(xx, e, 1);
        DF_TRY(df_xchg_wait(xx, e)); // last step's exchange (the buffers are ours after it)
        if (pp->sync) {
            for (int b = 0; b < B; b++) {
                put(st, (size_t)b * rows, x + b * img, rows, dt);
                put(sb, (size_t)b * rows, x + b * img + (size_t)(H - pad) * row, rows, dt);
            }
            trace_sent_halo(pp, e, st, sb, pbytes);
            DF_TRY(df_xchg_halo_sync(xx, e));
        }
        float *t = pp->halo, *bo = pp->halo + part;
        if (up >= 0) { // bottom rows of the band above
            const void *r = df_xchg_halo_recv(xx, e, 0);
            get(t, r, 0, part, dt);
            trace_read_bytes(pp, e, up, r, pbytes);
            *top = t;
        }
        if (dn < pp->P) { // top rows of the band below
            const void *r = df_xchg_halo_recv(xx, e, 1);
            get(bo, r, 0, part, dt);
            trace_read_bytes(pp, e, dn, r, pbytes);
            *bot = bo;
        }
        if (!pp->sync && pp->prm.sync_mode != DF_SYNC_NO_SYNC) {
            for (int b = 0; b < B; b++) {
                put(st, (size_t)b * rows, x + b * img, rows, dt);
                put(sb, (size_t)b * rows, x + b * img + (size_t)(H - pad) * row, rows, dt);
            }
            trace_sent_halo(pp, e, st, sb, pbytes);
            DF_TRY(df_xchg_enqueue(xx, e));
        }
        return DF_OK;
    }

    if (!pp->sync) DF_TRY(df_xchg_wait(pp->x, e));
    // Asynchronous: read the neighbours' stale rows first, then publish ours.
    if (pp->sync) {
        void *own = df_xchg_slot(pp->x, e, pp->me);
        for (int b = 0; b < B; b++) {
            put(own, (size_t)b * rows, x + b * img, rows, dt);
            put(own, part + (size_t)b * rows, x + b * img + (size_t)(H - pad) * row, rows, dt);
        }
        trace_sent_halo(pp, e, own, (unsigned char *)own + pbytes, pbytes);
        DF_TRY(df_xchg_sync(pp->x, e));
    }
    float *t = pp->halo, *bo = pp->halo + part;
    if (up >= 0) {
        const unsigned char *sl = df_xchg_slot(pp->x, e, up);
        get(t, sl, part, part, dt); // bottom rows of the band above
        trace_read_bytes(pp, e, up, sl + pbytes, pbytes);
        *top = t;
    }
    if (dn < pp->P) {
        const unsigned char *sl = df_xchg_slot(pp->x, e, dn);
        get(bo, sl, 0, part, dt);   // top rows of the band below
        trace_read_bytes(pp, e, dn, sl, pbytes);
        *bot = bo;
    }
    if (!pp->sync && pp->prm.sync_mode != DF_SYNC_NO_SYNC) {
        void *own = df_xchg_slot(pp->x, e, pp->me);
        for (int b = 0; b < B; b++) {
            put(own, (size_t)b * rows, x + b * img, rows, dt);
            put(own, part + (size_t)b * rows, x + b * img + (size_t)(H - pad) * row, rows, dt);
        }
        trace_sent_halo(pp, e, own, (unsigned char *)own + pbytes, pbytes);
        DF_TRY(df_xchg_enqueue(pp->x, e));
    }
    return DF_OK;
}

static df_status pctx_conv_halo(df_pctx *ctx, int idx, const char *name, const float *x, int B,
                                int H, int W, int C, int pad, const float **top,
                                const float **bot) {
    df_patch *pp = ctx->impl;
    STICKY(pp, conv_halo_impl(pp, idx, name, x, B, H, W, C, pad, top, bot));
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// self-attention K/V

static df_status attn_kv_impl(df_patch *pp, int idx, const char *name, const float *k,
                              const float *v, int B, int T, int C, const float **k_full,
                              const float **v_full, int *T_full) {
    DF_TRY(poll(pp));
    op *o;
    DF_TRY(next_op(pp, OP_ATTN, idx, name, B, T, C, 0, 0, &o));
    // tokens scale with the band rows: T = deep[me] * t1 (t1 tokens per deepest-level row)
    DF_FAIL_IF(T % pp->deep[pp->me] != 0, DF_ERR_SHAPE,
               "%s: %d tokens do not match a band of %d deepest-level rows", name, T,
               pp->deep[pp->me]);
    const size_t t1 = (size_t)(T / pp->deep[pp->me]);
    size_t blk = (size_t)T * C;       // one image's local K (or V)
    size_t part = (size_t)B * blk;    // [B][T][C]
    size_t pmax = (size_t)B * t1 * pp->dmax * C; // the slot's K (or V) part: the largest band
    if (pp->planning) {
        DF_TRY(df_xchg_register(pp->x, name, DF_XKIND_ATTN, 2 * pmax, pp->prm.comm_dtype,
                                &o->entry));
        DF_TRY(trace_plan_reserve(pp, o->entry));
    }
    int e = o->entry, P = pp->P;
    df_comm_dtype dt = df_xchg_entry_dtype(pp->x, e);
    size_t Tf = t1 * (size_t)pp->D;
    size_t full = Tf * C;             // one image's full K
    DF_TRY(grow((void **)&pp->kv, &pp->kv_cap, 2 * (size_t)B * full * sizeof(float),
                pp->planning));
    float *kf = pp->kv, *vf = pp->kv + (size_t)B * full; // [B][Tf][C] each

    if (pp->sync) {
        void *own = df_xchg_slot(pp->x, e, pp->me);
        put(own, 0, k, part, dt);
        put(own, pmax, v, part, dt);
        trace_sent(pp, e);
        DF_TRY(df_xchg_sync(pp->x, e));
    } else {
        DF_TRY(df_xchg_wait(pp->x, e));
    }
    for (int j = 0; j < P; j++) {
        size_t jb = t1 * pp->deep[j] * C;            // patch j's K block of one image
        size_t jo = t1 * (size_t)(pp->start[j] >> pp->n_down) * C; // its offset in the image
        if (j == pp->me) {
            for (int b = 0; b < B; b++) {
                memcpy(kf + b * full + jo, k + b * blk, blk * sizeof(float));
                memcpy(vf + b * full + jo, v + b * blk, blk * sizeof(float));
            }
            continue;
        }
        const void *s = df_xchg_slot(pp->x, e, j);
        for (int b = 0; b < B; b++) {
            get(kf + b * full + jo, s, (size_t)b * jb, jb, dt);
            get(vf + b * full + jo, s, pmax + (size_t)b * jb, jb, dt);
        }
        trace_read(pp, e, j);
    }
    if (!pp->sync && pp->prm.sync_mode != DF_SYNC_NO_SYNC) {
        void *own = df_xchg_slot(pp->x, e, pp->me);
        put(own, 0, k, part, dt);
        put(own, pmax, v, part, dt);
        trace_sent(pp, e);
        DF_TRY(df_xchg_enqueue(pp->x, e));
    }
    *k_full = kf;
    *v_full = vf;
    *T_full = (int)Tf;
    return DF_OK;
}

static df_status pctx_attn_kv(df_pctx *ctx, int idx, const char *name, const float *k,
                              const float *v, int B, int T, int C, const float **k_full,
                              const float **v_full, int *T_full) {
    df_patch *pp = ctx->impl;
    STICKY(pp, attn_kv_impl(pp, idx, name, k, v, B, T, C, k_full, v_full, T_full));
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// GroupNorm statistics

// var from moments; compat: distrifuser's n_loc/(n_loc-1) factor (local element count).
static float finish_var(const df_patch *pp, double var, double count, int clamp) {
    if (clamp && var < 0) var = 0;
    if (pp->prm.gn_compat && count > 1) var *= count / (count - 1);
    return (float)var;
}

static df_status gn_stats_impl(df_patch *pp, int idx, const char *name, const double *stats,
                               int B, int G, double count, float *mean, float *var) {
    DF_TRY(poll(pp));
    op *o;
    DF_TRY(next_op(pp, OP_GN, idx, name, B, G, (int)count, 0, 0, &o));
    int n = B * G, P = pp->P;
    df_sync_mode m = pp->prm.sync_mode;
    int reg = gn_registered(m);
    if (pp->planning && reg) {
        DF_TRY(df_xchg_register(pp->x, name, DF_XKIND_GN, 2 * (size_t)n, DF_COMM_F64,
                                &o->entry));
        DF_TRY(trace_plan_reserve(pp, o->entry));
    }
    DF_TRY(grow((void **)&pp->gn, &pp->gn_cap, 2 * (size_t)n * sizeof(double), pp->planning));
    double *loc = pp->gn; // [n][2] fresh local moments (mean, mean of squares)
    for (int i = 0; i < n; i++) {
        loc[2 * i] = stats[2 * i] / count;
        loc[2 * i + 1] = stats[2 * i + 1] / count;
    }
    const int exact = !pp->prm.gn_compat;

    if (pp->sync || (!reg && m == DF_SYNC_SYNC_GN)) {
        if (reg) { // all-gather the moments into the slots (stale data for the next step)
            int e = o->entry;
            double *own = df_xchg_slot(pp->x, e, pp->me);
            memcpy(own, loc, 2 * (size_t)n * sizeof(double));
            trace_sent(pp, e);
            DF_TRY(df_xchg_sync(pp->x, e));
            for (int i = 0; i < n; i++) {
                double m1 = 0, m2 = 0;
                for (int j = 0; j < P; j++) {
                    const double *s = df_xchg_slot(pp->x, e, j);
                    if (pp->even) {
                        m1 += s[2 * i];
                        m2 += s[2 * i + 1];
                    } else { // weighted by the band's share of the image
                        m1 += s[2 * i] * pp->deep[j];
                        m2 += s[2 * i + 1] * pp->deep[j];
                    }
                }
                m1 /= pp->even ? P : pp->D;
                m2 /= pp->even ? P : pp->D;
                mean[i] = (float)m1;
                var[i] = finish_var(pp, m2 - m1 * m1, count, 1);
            }
            for (int j = 0; j < P; j++) trace_read(pp, e, j);
        } else { // all-reduce the sums
            memcpy(loc, stats, 2 * (size_t)n * sizeof(double));
            DF_TRY(df_xchg_allreduce_f64(pp->x, loc, 2 * (size_t)n));
            // the whole image's element count (bands scale with their deepest-level rows)
            double cnt = pp->even ? count * P : count / pp->deep[pp->me] * pp->D;
            for (int i = 0; i < n; i++) {
                double m1 = loc[2 * i] / cnt, m2 = loc[2 * i + 1] / cnt;
                mean[i] = (float)m1;
                var[i] = finish_var(pp, m2 - m1 * m1, count, 1);
            }
        }
        return DF_OK;
    }

    if (!reg) { // separate_gn / no_sync after warm-up: local statistics, biased variance
        for (int i = 0; i < n; i++) {
            double m1 = loc[2 * i], v = loc[2 * i + 1] - m1 * m1;
            mean[i] = (float)m1;
            var[i] = (float)(v > 0 ? v : 0);
        }
        return DF_OK;
    }

    // corrected_async_gn / stale_gn, asynchronous step
    int e = o->entry;
    DF_TRY(df_xchg_wait(pp->x, e));
    const double *own = df_xchg_slot(pp->x, e, pp->me); // stale local (what we sent last step)
    for (int i = 0; i < n; i++) {
        double m1 = 0, m2 = 0;
        for (int j = 0; j < P; j++) {
            const double *s = j == pp->me && m == DF_SYNC_STALE_GN ? loc
                                                                   : df_xchg_slot(pp->x, e, j);
            if (pp->even) {
                m1 += s[2 * i];
                m2 += s[2 * i + 1];
            } else {
                m1 += s[2 * i] * pp->deep[j];
                m2 += s[2 * i + 1] * pp->deep[j];
            }
        }
        m1 /= pp->even ? P : pp->D;
        m2 /= pp->even ? P : pp->D;
        double v;
        if (m == DF_SYNC_CORRECTED_ASYNC_GN) {
            m1 += loc[2 * i] - own[2 * i];
            m2 += loc[2 * i + 1] - own[2 * i + 1];
            v = m2 - m1 * m1;
            if (v < 0) v = loc[2 * i + 1] - loc[2 * i] * loc[2 * i]; // fresh local variance
            mean[i] = (float)m1;
            var[i] = finish_var(pp, v, count, exact);
        } else {
            v = m2 - m1 * m1; // stale_gn: no guard (as distrifuser; exact mode clamps at 0)
            mean[i] = (float)m1;
            var[i] = finish_var(pp, v, count, exact);
        }
    }
    for (int j = 0; j < P; j++)
        if (j != pp->me || m == DF_SYNC_CORRECTED_ASYNC_GN) trace_read(pp, e, j);
    if (m != DF_SYNC_NO_SYNC) {
        double *mine = df_xchg_slot(pp->x, e, pp->me);
        memcpy(mine, loc, 2 * (size_t)n * sizeof(double));
        trace_sent(pp, e);
        DF_TRY(df_xchg_enqueue(pp->x, e));
    }
    return DF_OK;
}

static df_status pctx_gn_stats(df_pctx *ctx, int idx, const char *name, const double *stats,
                               int B, int G, double count, float *mean, float *var) {
    df_patch *pp = ctx->impl;
    STICKY(pp, gn_stats_impl(pp, idx, name, stats, B, G, count, mean, var));
    return DF_OK;
}

static const df_pctx_ops k_patch_ops = {pctx_conv_halo, pctx_attn_kv, pctx_gn_stats,
                                        NULL}; // no tensor parallelism

// ---------------------------------------------------------------------------------------------
// lifecycle

df_status df_patch_create(df_comm *batch, const df_dist_params *p, const int *deep_rows,
                          int n_down, df_patch **out) {
    *out = NULL;
    DF_FAIL_IF(!deep_rows || n_down < 0 || n_down > 10, DF_ERR_ARG, "bad band plan");
    df_patch *pp = calloc(1, sizeof *pp);
    DF_FAIL_IF(!pp, DF_ERR_NOMEM, "out of memory");
    pp->prm = *p;
    pp->comm = batch;
    pp->P = df_comm_size(batch);
    pp->me = df_comm_rank(batch);
    pp->n_down = n_down;
    pp->deep = malloc((size_t)pp->P * sizeof *pp->deep);
    pp->start = malloc((size_t)(pp->P + 1) * sizeof *pp->start);
    if (!pp->deep || !pp->start) {
        free(pp->deep);
        free(pp->start);
        free(pp);
        return DF_ERROR(DF_ERR_NOMEM, "out of memory");
    }
    memcpy(pp->deep, deep_rows, (size_t)pp->P * sizeof *pp->deep);
    df_bands_starts(pp->deep, pp->P, 1 << n_down, pp->start);
    pp->D = pp->start[pp->P] >> n_down;
    pp->even = df_bands_even(pp->deep, pp->P);
    for (int j = 0; j < pp->P; j++)
        if (pp->deep[j] > pp->dmax) pp->dmax = pp->deep[j];
    df_status st = df_xchg_create(batch, p->comm_checkpoint, p->progress, &pp->x);
    if (st != DF_OK) {
        free(pp->deep);
        free(pp->start);
        free(pp);
        return st;
    }
    pp->ctx.ops = &k_patch_ops;
    pp->ctx.impl = pp;
    *out = pp;
    return DF_OK;
}

void df_patch_destroy(df_patch *pp) {
    if (!pp) return;
    df_xchg_destroy(pp->x);
    free(pp->deep);
    free(pp->start);
    free(pp->ops);
    df_free(pp->halo);
    df_free(pp->kv);
    df_free(pp->gn);
    free(pp->tr_sent);
    free(pp->tr_read);
    free(pp->pl_sent);
    free(pp->pl_read);
    free(pp);
}

df_status df_patch_begin(df_patch *pp, int step, const float *x_full, int B, int H, int W,
                         int Cin) {
    DF_FAIL_IF(pp->in_step, DF_ERR_INTERNAL, "df_patch_begin inside a step");
    DF_FAIL_IF(H != pp->start[pp->P], DF_ERR_SHAPE,
               "latent height %d does not match the band plan (%d rows)", H, pp->start[pp->P]);
    if (pp->planned && step == 0) DF_TRY(df_xchg_quiesce(pp->x)); // new image
    pp->planning = !pp->planned;
    pp->step = step;
    pp->sync = pp->planning || step <= pp->prm.warmup_steps ||
               pp->prm.sync_mode == DF_SYNC_FULL_SYNC;
    pp->call = 0;
    pp->sticky = DF_OK;
    pp->x_full = x_full;
    pp->xB = B, pp->xH = H, pp->xW = W, pp->xC = Cin;
    pp->ctx.row0 = pp->start[pp->me];
    pp->ctx.row1 = pp->start[pp->me + 1];
    pp->ctx.H_full = H;
    pp->in_step = 1;
    return DF_OK;
}

df_pctx *df_patch_ctx(df_patch *pp) { return &pp->ctx; }

df_status df_patch_end(df_patch *pp) {
    DF_FAIL_IF(!pp->in_step, DF_ERR_INTERNAL, "df_patch_end outside a step");
    pp->in_step = 0;
    pp->x_full = NULL;
    DF_TRY(pp->sticky);
    if (pp->planning) {
        pp->planning = 0;
        DF_TRY(df_xchg_commit(pp->x));
        pp->planned = 1;
        int ne = df_xchg_count(pp->x);
        if (pp->me == 0)
            df_log(DF_LOG_DEBUG,
                   "comm plan: %d tensors (%d conv halos %zu el, %d attention K/V %zu el, %d "
                   "GroupNorm %zu el), slot %.2f MiB, buffer %d x slot, checkpoint %d",
                   ne, df_xchg_kind_count(pp->x, DF_XKIND_CONV),
                   df_xchg_kind_elems(pp->x, DF_XKIND_CONV),
                   df_xchg_kind_count(pp->x, DF_XKIND_ATTN),
                   df_xchg_kind_elems(pp->x, DF_XKIND_ATTN), df_xchg_kind_count(pp->x, DF_XKIND_GN),
                   df_xchg_kind_elems(pp->x, DF_XKIND_GN),
                   (double)df_xchg_slot_bytes(pp->x) / 1048576.0, pp->P, pp->prm.comm_checkpoint);
        if (pp->tr_steps && ne > 0) {
            pp->tr_sent = calloc(2 * (size_t)pp->tr_steps * ne, sizeof *pp->tr_sent);
            pp->tr_read = calloc((size_t)pp->tr_steps * ne * pp->P, sizeof *pp->tr_read);
            DF_FAIL_IF(!pp->tr_sent || !pp->tr_read, DF_ERR_NOMEM, "out of memory (trace)");
            if (pp->step < pp->tr_steps) {
                memcpy(pp->tr_sent + 2 * (size_t)pp->step * ne, pp->pl_sent, 2 * (size_t)ne * 8);
                memcpy(pp->tr_read + (size_t)pp->step * ne * pp->P, pp->pl_read,
                       (size_t)ne * pp->P * 8);
            }
        }
        return DF_OK;
    }
    DF_FAIL_IF(pp->call != pp->n_ops, DF_ERR_INTERNAL,
               "layer sequence changed after planning: %d patch-context calls in this forward, "
               "%d planned",
               pp->call, pp->n_ops);
    if (!pp->sync) DF_TRY(df_xchg_flush(pp->x));
    return DF_OK;
}

void df_patch_abort_step(df_patch *pp) {
    pp->in_step = 0;
    pp->x_full = NULL;
}

int df_patch_step_sync(const df_patch *pp) { return pp->sync; }
df_xchg *df_patch_xchg(df_patch *pp) { return pp->x; }

df_status df_patch_trace_enable(df_patch *pp, int max_steps) {
    DF_FAIL_IF(pp->planned || pp->in_step, DF_ERR_ARG, "enable the trace before the first step");
    DF_FAIL_IF(max_steps < 1, DF_ERR_ARG, "trace needs max_steps >= 1");
    pp->tr_steps = max_steps;
    return DF_OK;
}

const uint64_t *df_patch_trace_sent(const df_patch *pp) { return pp->tr_sent; }
const uint64_t *df_patch_trace_read(const df_patch *pp) { return pp->tr_read; }
