// Internal header of the UNet (not installed): the df_unet struct, the weight structs, the
// profile (PROF) machinery and the small weight accessors shared by the files of the model:
//   unet.c            config / plan / text conditioning / layers / df_unet_forward / cost model
//   unet_weights.c    weight lookup, the f32 weight cache, the bf16 weight scratch
//   unet_profile.c    the optional per-operation profile (tables, printing)
//   unet_tp_layers.c  the tensor-parallel layer variants (ctx->tp_size > 1)
//   unet_tp.c         tensor-parallel state: sliced weights, scratch (unet_tp.h)
#ifndef DF_MODEL_UNET_IMPL_H
#define DF_MODEL_UNET_IMPL_H

#include "model/unet.h"

#include "kernels/gemm_bf16.h"
#include "kernels/kernels.h"
#include "model/unet_tp.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define NAME_CAP 128
// Feed-forward token chunk budget: the GEGLU input [tc][2F] and output [tc][F] hold at most this
// many floats together (bounds the [T][2F] intermediate at any resolution).
#define FF_CHUNK_FLOATS ((size_t)16 << 20)
// Default f32 weight cache limit (MiB): a model whose matrices fit is converted once at load.
// Build option DF_UNET_CACHE_MB (CMake); per UNet: df_unet_set_weight_cache.
#ifndef DF_CONV_ALGO_DEFAULT // build option (CMake): the default df_conv_algo
#    define DF_CONV_ALGO_DEFAULT 0
#endif
#ifndef DF_UNET_CACHE_MB
#    define DF_UNET_CACHE_MB 256
#endif
#ifndef DF_UNET_PROFILE
#    define DF_UNET_PROFILE 0
#endif

// ---------------------------------------------------------------------------------------------
// Optional profile (df_unet_set_profile, or the build option DF_UNET_PROFILE=ON): process CPU
// time and FLOPs per operation class and latent level, printed to stderr by df_unet_destroy (the
// first forward, a warm-up with page faults on the weights, is dropped when there are more).
// Off: one branch per op. Tables and printing: unet_profile.c.

enum {
    PR_CONV_W,   // conv weight conversion + packing
    PR_CONV,     // 3x3 conv (im2col + GEMM)
    PR_LIN_W,    // linear weight conversion
    PR_LIN,      // linear GEMM
    PR_ATT_SELF, // attn1 core
    PR_ATT_X,    // attn2 core
    PR_NORM,     // GroupNorm / LayerNorm
    PR_EW,       // GEGLU, adds, temb, concat, upsample, scaling
    PR_N
};
#define PR_LEVELS 5 // per-level rows; level index = log2(T0 / T) clamped

typedef struct uprof {
    int on;
    double t[PR_N][PR_LEVELS], wall[PR_N][PR_LEVELS], flops[PR_N][PR_LEVELS];
    double forwards;
    int skipped_first; // counters were reset at the second forward (first = warm-up)
} uprof;

static inline double pr_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---------------------------------------------------------------------------------------------
// Weights

typedef struct uparam {
    const df_st_tensor *t; // stored tensor (NULL: absent optional bias)
    const float *f;        // f32 data when cached / zero-copy (conv: packed HWIO), else NULL
} uparam;

typedef struct ulin { // Linear [out][in] (also 1x1 convs)
    uparam w, b;
    int in, out;
} ulin;

typedef struct uconv { // 3x3 conv, padding 1
    uparam w, b;
    int cin, cout;
    char name[NAME_CAP];
} uconv;

typedef struct unorm { // GroupNorm or LayerNorm affine
    uparam g, b;
    int C;
    char name[NAME_CAP];
} unorm;

typedef struct uresnet { // ResnetBlock2D
    char name[NAME_CAP];
    int cin, cout, has_sc;
    float out_scale;
    unorm norm1, norm2;
    uconv conv1, conv2;
    ulin temb, sc;
} uresnet;

typedef struct ublock { // BasicTransformerBlock
    char attn1[NAME_CAP];
    unorm ln1, ln2, ln3;
    ulin q1, k1, v1, o1; // self-attention
    ulin q2, k2, v2, o2; // cross-attention
    ulin ff1, ff2;       // GEGLU proj [2F][C], out [C][F]
    float *ktext, *vtext; // [B][Tt][C] cached cross-attention K/V (in the text arena)
} ublock;

typedef struct utrans { // Transformer2DModel
    char name[NAME_CAP];
    int C, heads, depth; // depth 0: absent
    unorm norm;
    ulin proj_in, proj_out;
    ublock *blocks; // [depth]
} utrans;

typedef struct ublk { // one down or up block
    int nres, has_sample; // resnets; downsampler/upsampler present
    uresnet res[DF_UNET_MAX_LAYERS];
    utrans attn[DF_UNET_MAX_LAYERS];
    uconv sample; // downsamplers.0.conv / upsamplers.0.conv
} ublk;

typedef struct wreg { // every parameter, for caching
    uparam *p;
    int kind; // 0 vector, 1 linear, 2 conv3
    int cout, cin;
} wreg;

struct df_unet {
    df_unet_config cfg;
    df_weights *w;
    df_st_file *single; // owned single-file checkpoint or NULL

    ulin time1, time2, add1, add2;
    uconv conv_in, conv_out;
    unorm norm_out;
    ublk down[DF_UNET_MAX_LEVELS], up[DF_UNET_MAX_LEVELS];
    uresnet mid_res[2];
    utrans mid_attn;

    wreg *reg;
    int nreg, capreg;
    float *cache;       // f32 vectors (+ matrices when cached)
    size_t cache_bytes;
    float *wscr, *wscr2; // [max matrix floats] conversion scratch (NULL when all cached)
    size_t max_matrix;
    size_t weight_bytes;
    size_t cache_mb; // f32 weight cache limit (MiB)
    int conv_algo;   // df_conv_algo of the 3x3 convs (df_unet_set_conv_algo)
    // --compute bf16 (df_unet_set_compute): the big convs / linears run df_conv2d_bf16 /
    // df_linear_bf16 with their weight packed per use (from the f32 cache or scratch) into
    // wbf / wbf2 (bf16, [max packed matrix], half the f32 scratch); NULL while f32.
    int bf16;
    uint16_t *wbf, *wbf2;

    // plan
    int planned, B, H, W, Hb;
    int hb[DF_UNET_MAX_LEVELS], wl[DF_UNET_MAX_LEVELS]; // band rows / width per level
    float *arena;
    size_t arena_floats;
    float *skip[3 * DF_UNET_MAX_LEVELS * DF_UNET_MAX_LAYERS]; // skip stack slots
    int nskip;
    float *hA, *hB, *cat, *t1, *t2;   // hidden ping-pong, concat, resnet scratch
    float *ts, *tq, *tk, *tv;         // transformer stream / Q / K / V [P][C]
    float *ffg;                       // [tc][2F] then [tc][F] (GEGLU in / out)
    size_t ff_floats;
    float *tproj, *temb, *semb, *tmp_e, *tbuf; // time embedding vectors
    double *gstats;                   // [B][G][2]
    float *gmean, *gvar, *grstd;      // [B][G]

    // text conditioning
    float *text;
    size_t text_floats;
    int text_set, Tt;
    float *aug, *add_tproj; // [B][temb], [B*n_ids][atd]

    df_unet_debug_fn dbg;
    void *dbg_user;
    int idx; // patch-context call counter within a forward
    df_unet_tp *tp; // tensor-parallel state (unet_tp.h), made by the first tp_size > 1 forward
    int T0;  // tokens per image at level 0 of the current forward (profile levels)
    uprof prof;
};

static inline int pr_level(const df_unet *u, size_t T) {
    int l = 0;
    while (l + 1 < PR_LEVELS && T * ((size_t)2 << (2 * l)) <= (size_t)u->T0) l++;
    return l;
}

// PROF(u, cat, T, flops, statement): statement, timed into u->prof when profiling.
#define PROF(u, cat, T, fl, stmt)                                                              \
    do {                                                                                       \
        if (!(u)->prof.on) {                                                                   \
            stmt;                                                                              \
        } else {                                                                               \
            const double pt0_ = pr_clock(), pw0_ = df_time_s();                                \
            stmt;                                                                              \
            const int pl_ = pr_level((u), (size_t)(T));                                        \
            (u)->prof.t[cat][pl_] += pr_clock() - pt0_;                                        \
            (u)->prof.wall[cat][pl_] += df_time_s() - pw0_;                                    \
            (u)->prof.flops[cat][pl_] += (double)(fl);                                         \
        }                                                                                      \
    } while (0)

// unet_profile.c
void df_unet_pr_begin(df_unet *u); // at the start of a forward (drops the warm-up forward)
void df_unet_pr_print(const df_unet *u);

// unet_weights.c
df_status df_unet_resolve_weights(df_unet *u);
df_status df_unet_build_cache(df_unet *u);
void df_unet_convert_par(float *dst, const df_st_tensor *t);
void df_unet_pack_conv_par(float *dst, const df_st_tensor *t, int cout, int cin);

// f32 weights of a linear layer: cached, zero-copy, or converted into `scr`.
static inline const float *lin_w(const ulin *l, float *scr) {
    if (l->w.f) return l->w.f;
    df_unet_convert_par(scr, l->w.t);
    return scr;
}

static inline const float *conv_w(df_unet *u, const uconv *c) {
    if (c->w.f) return c->w.f;
    df_unet_pack_conv_par(u->wscr, c->w.t, c->cout, c->cin);
    return u->wscr;
}

// bf16 for a linear of M rows (--compute bf16): only GEMMs large enough to pay for the packing.
static inline int lin_bf16(const df_unet *u, const ulin *l, int M) {
    return u->bf16 && M >= 64 && l->out >= 16 && l->in >= 16;
}

// The packed bf16 weight of a linear layer: from the f32 cache / zero-copy f32, else straight
// from the stored tensor (no f32 scratch).
static inline df_bf16_mat lin_wb(const ulin *l, uint16_t *dst) {
    df_bf16_mat m;
    if (l->w.f) df_bf16_pack(dst, l->w.f, l->in, 1, l->in, l->out, &m);
    else df_bf16_pack_weight(dst, l->w.t->data, l->w.t->dtype, 0, l->out, l->in, &m);
    return m;
}

// The same for a 3x3 conv (HWIO order).
static inline df_bf16_mat conv_wb(const uconv *c, uint16_t *dst) {
    df_bf16_mat m;
    if (c->w.f) df_bf16_pack(dst, c->w.f, c->cout, 0, 9 * c->cin, c->cout, &m);
    else df_bf16_pack_weight(dst, c->w.t->data, c->w.t->dtype, 1, c->cout, c->cin, &m);
    return m;
}

// Tokens per feed-forward chunk (FF_CHUNK_FLOATS) for P tokens of C channels.
static inline size_t ff_chunk_tokens(size_t P, int C) {
    size_t tc = FF_CHUNK_FLOATS / (12 * (size_t)C); // [tc][2F] + [tc][F], F = 4C
    if (tc < 64) tc = 64;
    return tc < P ? tc : P;
}

// unet.c
df_status df_unet_group_norm(df_unet *u, df_pctx *ctx, const unorm *n, const float *x, float *y,
                             int B, int T, float eps, int silu);

// unet_tp_layers.c: the tensor-parallel variants of conv3 / resnet / transformer_block
df_status df_unet_conv3_tp(df_unet *u, df_pctx *ctx, const uconv *c, const float *x, float *y,
                           int B, int H, int W, int stride);
df_status df_unet_resnet_tp(df_unet *u, df_pctx *ctx, const uresnet *r, const float *x, float *y,
                            int B, int H, int W);
df_status df_unet_transformer_block_tp(df_unet *u, df_pctx *ctx, const ublock *k, float *s,
                                       int B, int T, int C, int heads);

#endif
