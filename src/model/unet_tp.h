// Tensor parallelism of the UNet (distrifuser's `parallelism="tensor"` baseline, spec §4.2):
// helpers that the layers of unet_tp_layers.c use when the patch context of unet.c has tp_size > 1
// (model/pctx.h).
//
// Every rank of a tensor-parallel group of P ranks holds the full activations of the whole image
// and computes a 1/P share of the weights of the split layers; the partial output of each split
// layer is summed over the group (ctx->allreduce, blocking) and then its bias is added once:
//   attention (attn1 and attn2)  heads split (df_tp_share: the first heads mod P ranks get one
//                                more; a rank may get 0 heads and contributes zeros); to_q/to_k/
//                                to_v rows and to_out.0 columns of the rank's heads; attn2 uses
//                                the rank's channel slice of the cached text K/V.
//   feed-forward (GEGLU)         inner features [f0, f1) of F = 4C: net.0.proj rows [f0, f1)
//                                (value) and [F + f0, F + f1) (gate), net.2 columns [f0, f1).
//   ResnetBlock2D                conv1, its bias and time_emb_proj on output channels [m0, m1);
//                                norm2 as a GroupNorm of G/P groups over those channels (exact:
//                                groups do not straddle slices); conv2 on input channels
//                                [m0, m1); norm1 and conv_shortcut replicated.
//   down/upsampler convs,        input channels [c0, c1).
//   conv_out
// Replicated: conv_in, time/add embeddings, Transformer2DModel norm and proj_in/proj_out,
// LayerNorms, conv_norm_out. One forward makes 2 all-reduces per transformer block + 1 FF + 1 per
// resnet + 1 per down/upsampler and conv_out (SDXL: 140 + 70 + 17... see df_unet_tp_volume).
//
// Requirement (checked by df_unet_tp_check): the GroupNorm group count, hence every split
// channel count, divisible by P. Head counts need not be.
#ifndef DF_MODEL_UNET_TP_H
#define DF_MODEL_UNET_TP_H

#include "io/safetensors.h"
#include "model/unet.h"

// Share [*a, *b) of n items for rank r of P: floor(n/P) items each, the first n mod P ranks one
// more (distrifuser's head split; equal contiguous shares when P divides n).
void df_tp_share(int n, int P, int r, int *a, int *b);

// Checks that tensor parallelism of degree P (ranks per group) can split this UNet. DF_ERR_ARG
// naming the layer, the counts and the degrees that work otherwise. P = 1 is always fine.
df_status df_unet_tp_check(const df_unet_config *cfg, int P);

// Communication of one forward of B images at a full latent H x W with tensor-parallel degree P:
// the number of all-reduces and the floats each all-reduces (summed over the all-reduces; every
// rank contributes that many). Per-rank logical bytes of a ring all-reduce: 2 (P-1)/P x 4 x
// floats each way.
void df_unet_tp_volume(const df_unet_config *cfg, int B, int H, int W, int *n_allreduce,
                       double *floats);

// Per-UNet state of one rank: sliced f32 weights (cached while the total stays within limit_mb,
// the UNet's weight cache limit, df_unet_set_weight_cache; beyond that converted on every use
// into scratch), and activation scratch buffers.
typedef struct df_unet_tp df_unet_tp;

df_status df_unet_tp_create(int rank, int size, size_t limit_mb, df_unet_tp **out);
void df_unet_tp_destroy(df_unet_tp *tp); // accepts NULL
int df_unet_tp_rank(const df_unet_tp *tp);
int df_unet_tp_size(const df_unet_tp *tp);
size_t df_unet_tp_cache_bytes(const df_unet_tp *tp); // cached sliced weights

// Linear weight t [out][in] (any stored float dtype): rows [r0, r1) then rows [r2, r3) (r2 == r3:
// none), columns [c0, c1) -> *w f32 [(r1 - r0) + (r3 - r2)][c1 - c0]. slot 0 or 1: the scratch
// used when not cached (valid until the next call with the same slot).
df_status df_unet_tp_linear(df_unet_tp *tp, const df_st_tensor *t, int out, int in, int r0,
                            int r1, int r2, int r3, int c0, int c1, int slot, const float **w);
// 3x3 conv weight t [cout][cin][3][3]: output channels [o0, o1), input channels [i0, i1) ->
// *w packed HWIO [3][3][i1 - i0][o1 - o0] (df_conv2d's layout).
df_status df_unet_tp_conv(df_unet_tp *tp, const df_st_tensor *t, int cout, int cin, int o0,
                          int o1, int i0, int i1, int slot, const float **w);
// Vector pieces v[r0, r1) followed by v[r2, r3) (cached copy; v f32, e.g. a bias).
df_status df_unet_tp_vec(df_unet_tp *tp, const float *v, int r0, int r1, int r2, int r3,
                         const float **out);
// Activation scratch `which` (0..3) of at least `floats` floats (grown on demand, kept).
df_status df_unet_tp_buf(df_unet_tp *tp, int which, size_t floats, float **out);

// dst [P][c1 - c0] = channels [c0, c1) of x [P][C].
void df_tp_slice_channels(float *dst, const float *x, size_t P, int C, int c0, int c1);
// y [P][C] += (part ? part[p][c] : 0) + (b ? b[c] : 0).
void df_tp_add_bias(float *y, const float *part, const float *b, size_t P, int C);
// y [P][C] += e [P / T][C] (one row per image of T tokens).
void df_tp_add_rows(float *y, const float *e, size_t P, int T, int C);

#endif // DF_MODEL_UNET_TP_H
