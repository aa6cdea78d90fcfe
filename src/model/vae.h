// AutoencoderKL (diffusers) decoder, optional encoder, and diffusers' tiled decoding
// (spec sdxl.md §4).
//
// Decoder: z -> post_quant_conv (1x1) -> conv_in (3x3) -> mid (resnet, single-head attention over
// all pixels with GroupNorm + residual, resnet) -> up blocks (layers_per_block + 1 resnets each,
// nearest x2 upsample + 3x3 conv except the last) -> GroupNorm + SiLU -> conv_out. GroupNorm eps
// 1e-6, SiLU everywhere, no time embedding. Channels of up block i: block_out[levels-1-i].
//
// Layout: NHWC f32 ([B][H][W][C]). The decoder takes the already-scaled latents
// (latents / scaling_factor, computed by the caller) and returns the raw decoder output (not
// clamped; the pipeline maps it with clamp(x/2 + 0.5, 0, 1)).
//
// Memory (untiled, per image): one activation arena holding each layer's input at one end and
// its output at the other, sized to the largest input + output pair (at 1024^2 SDXL the first
// full-resolution resnet: 256 + 128 channels, 1.61 GB; two buffers of the largest tensor took
// 2.15 GB), plus bounded band scratch: GroupNorm statistics are taken over the whole
// tensor, then normalisation + SiLU + 3x3 conv run in row bands (with halo rows), so no
// normalised full-size copy exists. The mid attention uses the tiled online-softmax kernel
// (df_attention), never a T x T score matrix. Weights stay in their stored dtype and are
// converted per layer into a scratch.
//
// Tiling (diffusers AutoencoderKL.tiled_decode, 0.24): tile_sample_min_size = sample_size
// (config; overridable), tile_latent_min_size = int(sample / 2^(levels-1)), overlap factor 0.25:
// latent tiles of tile_latent at a stride of int(tile_latent * 0.75), each decoded on its own
// (GroupNorm / attention statistics are per tile), blended with the tile above (blend_v) and to
// the left (blend_h) over int(sample * 0.25) pixels with weights y/e, cropped to
// sample - blend pixels and concatenated. Tiling applies only when a latent side exceeds
// tile_latent_min_size; its output differs from the untiled decode.
#ifndef DF_MODEL_VAE_H
#define DF_MODEL_VAE_H

#include "core/core.h"
#include "model/weights.h"

#include <stddef.h>

#define DF_VAE_MAX_LEVELS 8

typedef struct df_vae_config {
    int in_channels;     // image channels (3)
    int out_channels;    // decoded image channels (3)
    int latent_channels; // 4
    int levels;          // len(block_out_channels)
    int block_out[DF_VAE_MAX_LEVELS];
    int layers_per_block; // encoder resnets per block; the decoder has layers_per_block + 1
    int groups;           // norm_num_groups (32)
    int sample_size;      // tile_sample_min_size for tiling (SDXL 1024, SD 1.5 512)
    float scaling_factor; // for the caller (SDXL 0.13025, SD 1.5 0.18215)
    int force_upcast;     // informational (we always compute in f32)
    int mid_attention;    // mid_block_add_attention (default 1)
    int use_quant_conv;   // quant_conv present (default 1)
    int use_post_quant_conv; // post_quant_conv present (default 1)
} df_vae_config;

// Reads a diffusers AutoencoderKL config.json (defaults as in diffusers for absent keys). Only
// DownEncoderBlock2D / UpDecoderBlock2D and act_fn silu are supported (DF_ERR_UNSUPPORTED).
df_status df_vae_config_load(const char *path, df_vae_config *cfg);
df_status df_vae_config_parse(const char *json, const char *label, df_vae_config *cfg);
// Real SD VAE configs (single-file checkpoints carry none): block_out 128/256/512/512,
// layers_per_block 2, groups 32; sdxl: sample_size 1024, scaling 0.13025; otherwise (SD 1.x)
// sample_size 512, scaling 0.18215.
void df_vae_config_sd(df_vae_config *cfg, int sdxl);

typedef struct df_vae df_vae;

// Binds the decoder (and, if with_encoder, the encoder) to a weights table (borrowed: it must
// outlive the model). Every tensor is looked up and shape-checked here; a missing tensor is
// DF_ERR_FORMAT naming it. Attention projections may be stored as Linear [C][C] or as LDM 1x1
// convs [C][C][1][1]; the deprecated names query/key/value/proj_attn are accepted.
df_status df_vae_create(const df_vae_config *cfg, df_weights *w, int with_encoder, df_vae **out);
// MODEL_DIR/COMPONENT/config.json + the component's weights (owned by the model).
df_status df_vae_load(const char *model_dir, const char *component, int with_encoder,
                      df_vae **out);
void df_vae_destroy(df_vae *m); // accepts NULL
const df_vae_config *df_vae_get_config(const df_vae *m);
int df_vae_scale_factor(const df_vae *m); // 2^(levels-1): image pixels per latent pixel

// Intermediate activation callback (untiled decode only): NAME is the golden name without
// "dbg." ("post_quant_conv", "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.<i>"),
// x is [H][W][C] of image `b`.
typedef void (*df_vae_dump_fn)(void *user, const char *name, int b, const float *x, int H, int W,
                               int C);

enum { DF_VAE_TILING_AUTO = 0, DF_VAE_TILING_OFF = 1, DF_VAE_TILING_FORCE = 2 };
#define DF_VAE_DEFAULT_MEM_LIMIT ((size_t)4 << 30) // bytes of activations before AUTO tiles

typedef struct df_vae_decode_opts {
    // AUTO: tile when df_vae_decode_bytes() exceeds mem_limit (and a latent side exceeds the
    // tile size); FORCE: diffusers' enable_vae_tiling() (tile whenever a side exceeds the tile
    // size); OFF: never.
    int tiling;
    size_t mem_limit;     // 0 = DF_VAE_DEFAULT_MEM_LIMIT
    int tile_sample_size; // 0 = config sample_size (diffusers tile_sample_min_size)
    double tile_overlap;  // 0 = 0.25 (tile_overlap_factor)
    df_vae_dump_fn dump;  // may be NULL
    void *dump_user;
} df_vae_decode_opts;

// z [B][h][w][latent_channels] (scaled latents) -> image [B][f*h][f*w][out_channels],
// f = df_vae_scale_factor(). opts may be NULL (AUTO with the defaults). Tiling parameters that
// would not reproduce an f*h x f*w image (tile sizes inconsistent with the scale factor) are
// DF_ERR_UNSUPPORTED.
df_status df_vae_decode(df_vae *m, const float *z, int B, int h, int w, float *image,
                        const df_vae_decode_opts *opts);
// Estimated activation bytes of an untiled decode of one h x w latent (buffers + scratch).
size_t df_vae_decode_bytes(const df_vae *m, int h, int w);
// Row-band scratch size (floats per scratch buffer, 3 buffers) of the banded GroupNorm + conv
// layers; 0 restores the default (4 Mi floats). It is raised to at least one row plus two halo
// rows of the widest tensor. Small values force thin bands (tests); results do not depend on it
// beyond float rounding in the GEMMs.
void df_vae_set_band_floats(df_vae *m, size_t floats);
// --compute bf16 for the 3x3 convs of the decode / encode (kernels/gemm_bf16.h) where
// df_bf16_available(), else f32; returns the dtype in effect (1 bf16). Default f32.
int df_vae_set_compute(df_vae *m, int bf16);
// 1 if df_vae_decode would tile with these options, 0 if not.
int df_vae_decode_tiles(const df_vae *m, int h, int w, const df_vae_decode_opts *opts);

// ---------------------------------------------------------------------------------------------
// Patch-parallel (band) decode. The latent's h rows are cut into n bands (df_vae_band_split);
// band k decodes image rows [f*r0, f*r1) of its latent rows [r0, r1) and the result equals the
// whole decode (up to float rounding): every 3x3 conv gets one halo row above and below from the
// neighbouring bands (the nearest x2 upsample + conv needs the neighbours' source rows), every
// GroupNorm sums its double statistics over all bands (the same sums the single decode takes),
// and the mid attention splits by query rows with the K/V of all bands gathered (key order = the
// global token order). The communication is supplied by the caller (MPI in
// src/runtime/vae_dist.c; this file stays MPI-free).

// Rows [*r0, *r1) of band k of n over R rows: the runtime's band rule (df_bands_range in
// runtime/bands.h, also the UNet's and naive patch's equal bands): heights differ by at most
// one, the first R % n bands get the extra row; each band has >= 1 row iff R >= n.
void df_vae_band_split(int R, int n, int k, int *r0, int *r1);

typedef struct df_vae_band_ops {
    void *user;
    int k, n; // this band and the band count (band k - 1 is above, k + 1 below)
    // In-place sum of n doubles over all bands (same order of addition on every band).
    df_status (*allreduce_f64)(void *user, double *buf, size_t n);
    // Halo rows of `floats` floats: sends `first` to band k-1 and `last` to band k+1; receives
    // band k-1's last row into `top` and band k+1's first row into `bot` (NULL: no neighbour).
    df_status (*halo)(void *user, const float *first, const float *last, float *top,
                      float *bot, size_t floats);
    // All-gather of row blocks: band j contributes its rows of df_vae_band_split(R, n, j), each
    // row_floats floats; recv [R][row_floats] in row order on every band.
    df_status (*allgather_rows)(void *user, const float *send, float *recv, int R,
                                size_t row_floats);
} df_vae_band_ops;

// Band ops->k of ops->n of the untiled decode of one image: z [h][w][latent] (the WHOLE latent;
// every band holds it) -> img [f*(r1-r0)][f*w][out_channels] (this band's rows). Collective
// over the bands (each calls it with the same z, h, w). DF_ERR_ARG if h < n. A local failure
// (allocation) is agreed on through allreduce_f64 before any other communication, so every band
// returns an error.
df_status df_vae_decode_band(df_vae *m, const float *z, int h, int w, const df_vae_band_ops *ops,
                             float *img);
// Activation bytes of band k of n (as df_vae_decode_bytes, plus the gathered K/V and halos).
size_t df_vae_decode_band_bytes(const df_vae *m, int h, int w, int k, int n);

// Encoder (img2img; the model must be created with_encoder): image [B][H][W][in_channels] in
// [-1, 1] -> mean, logvar [B][H/f][W/f][latent_channels] (logvar clamped to [-30, 20], as
// DiagonalGaussianDistribution). Latent = (mean or mean + exp(logvar/2) * noise) * scaling_factor
// is left to the caller. H, W multiples of f.
df_status df_vae_encode(df_vae *m, const float *image, int B, int H, int W, float *mean,
                        float *logvar);

#endif // DF_MODEL_VAE_H
