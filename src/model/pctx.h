// Patch context: the three questions a UNet layer asks about data outside its row band.
//
// The UNet forward (src/model/unet.c) is written once for every mode. It computes on a row band
// [row0, row1) of the latent (the whole latent when single-rank) and, wherever a layer needs
// context from other bands, it asks the context:
//   - conv_halo:   a k x k conv (k = 3) needs `pad` rows above and below its input band;
//   - attn_kv:     self-attention (attn1) needs K and V for the whole image;
//   - gn_stats:    GroupNorm needs the statistics of the whole image.
// The trivial single-rank context (df_pctx_single) answers with zero padding, the local K/V and
// the local statistics. The patch-parallel runtime (src/runtime/) answers from fresh (synchronous
// step) or one-step-stale (asynchronous step) data exchanged with the other ranks.
//
// Layers are identified by their weight prefix (e.g. "down_blocks.1.resnets.0.conv1") and by
// a per-forward sequence number `idx` (0, 1, 2, ... in call order, the same on every rank and
// every step), so the runtime can plan one buffer slot per layer.
//
// Shapes: B images in the batch; H, W, C of the local band at that layer's resolution.
//
// Tensor parallelism (spec §4.2): a context with tp_size > 1 makes the UNet compute, on the whole
// image (row0 = 0, row1 = H_full), only this rank's share tp_rank of every split layer: attention
// heads, feed-forward inner features, resnet mid channels (conv1/norm2/time_emb_proj), and the
// input channels of conv2, the down/upsampler convs and conv_out. The partial output of each
// split layer (before its bias) is summed over the tensor-parallel group with `allreduce`, so
// every rank holds the full activations after it (see model/unet_tp.h). tp_size 0 or 1: no
// tensor parallelism (contexts that leave the fields zero keep working).
#ifndef DF_MODEL_PCTX_H
#define DF_MODEL_PCTX_H

#include "core/core.h"

typedef struct df_pctx df_pctx;

typedef struct df_pctx_ops {
    // x: [B][H][W][C] local band input of the conv (fresh). Sets *top/*bot to [B][pad][W][C]
    // halo rows (memory owned by the context, valid until the next call) or NULL for zero
    // padding (image border).
    df_status (*conv_halo)(df_pctx *ctx, int idx, const char *name, const float *x, int B, int H,
                           int W, int C, int pad, const float **top, const float **bot);
    // k, v: [B][T][C] local keys/values (fresh, T = local tokens). Sets *k_full/*v_full to
    // [B][T_full][C] (owned by the context; may be k/v themselves when single-rank) and *T_full.
    df_status (*attn_kv)(df_pctx *ctx, int idx, const char *name, const float *k, const float *v,
                         int B, int T, int C, const float **k_full, const float **v_full,
                         int *T_full);
    // stats: [B][G][2] local (sum, sum of squares) in double over `count` elements per group.
    // Writes mean[B*G] and var[B*G] (biased variance) to use for normalisation.
    df_status (*gn_stats)(df_pctx *ctx, int idx, const char *name, const double *stats, int B,
                          int G, double count, float *mean, float *var);
    // Tensor parallelism only: x [n] (a layer's partial output) := the sum of x over the
    // tensor-parallel group, in place, the same on every rank (blocking). May be NULL when
    // tp_size <= 1 (never called then).
    df_status (*allreduce)(df_pctx *ctx, int idx, const char *name, float *x, size_t n);
} df_pctx_ops;

struct df_pctx {
    const df_pctx_ops *ops;
    int row0, row1; // band rows at latent resolution: [row0, row1) of H_full
    int H_full;     // full latent height (rows at level l: row0 >> l ... )
    void *impl;     // implementation data
    int tp_rank, tp_size; // tensor parallelism: this rank's share of tp_size (0/0 or 0/1: off)
};

// The trivial single-rank context: the band is the whole latent of height H.
void df_pctx_single_init(df_pctx *ctx, int H);
// Its operations (whole image, local answers; allreduce is the identity), for contexts that
// differ only in some of them (the tensor-parallel context).
const df_pctx_ops *df_pctx_single_ops(void);

#endif // DF_MODEL_PCTX_H
