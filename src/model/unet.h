// UNet2DConditionModel (SD 1.x / SD 2.x / SDXL and smaller configs of the same family), diffusers-
// exact in f32 (sdxl.md §3), on a row band of the latent through the patch context (pctx.h).
//
// Lifecycle:
//   df_unet_load(path)                      folder / unet folder / single-file checkpoint
//     (or df_unet_config_* + df_unet_create(cfg, weights))
//   df_unet_plan(u, B, H, W, band_rows)     activation arena, validated shapes (once per size)
//   df_unet_set_text(u, B, enc, ...)        attn2 K/V of every layer + SDXL added embedding
//                                           (once per image / prompt; reused by every step)
//   df_unet_forward(u, ctx, x, t, out)      one evaluation on the band [ctx->row0, ctx->row1)
//   df_unet_destroy(u)
//
// Layout: activations NHWC f32. x and out are [B][Hb][W][C] with Hb = ctx->row1 - ctx->row0 (the
// whole latent with df_pctx_single); at level l the band has Hb >> l rows (ceil halving for a
// whole image of any size). Weights stay mmapped in their stored dtype; each layer's matrix is
// converted right before use into one of two reusable f32 scratch buffers (conv weights packed
// HWIO), f32-stored aligned linears are used in place, and 1-D tensors are converted once. When
// all matrices fit the weight cache limit (df_unet_set_weight_cache; default: the build option
// DF_UNET_CACHE_MB, 256 MiB of f32) they are converted once at load instead (tiny models).
// Memory: SDXL 1024^2 batch 2 plans about 1.1 GB (arena + text K/V cache + weight scratch)
// beside the mmapped weights.
// A df_unet runs one forward at a time (its buffers are shared); kernels use all threads.
//
// Patch-context calls, in this order every forward (idx = 0, 1, 2, ... per call):
//   conv_in (conv_halo) ; per resnet: norm1 (gn_stats), conv1 (conv_halo), norm2, conv2 ;
//   per transformer: norm (gn_stats), then attn1 (attn_kv) of each block ; downsampler and
//   upsampler convs (conv_halo, after the block's resnets/transformers) ; conv_norm_out (gn_stats),
//   conv_out (conv_halo). `name` is the layer's weight prefix ("down_blocks.1.resnets.0.conv1",
//   "mid_block.attentions.0.transformer_blocks.3.attn1", "conv_in", ...). conv_in (idx 0) gets the
//   band input x itself; a stride-2 downsampler asks for pad 1 (only `top` is read for an even
//   band height); an upsampler conv asks about its nearest-upsampled input. tiny-sdxl makes 103
//   calls (conv_in + 39 halo convs + 46 GroupNorms + 17 attn1), SDXL 156, SD1.5 129.
#ifndef DF_MODEL_UNET_H
#define DF_MODEL_UNET_H

#include "model/pctx.h"
#include "model/weights.h"

#define DF_UNET_MAX_LEVELS 8  // len(block_out_channels)
#define DF_UNET_MAX_LAYERS 8  // layers_per_block + 1

// Resolved configuration (diffusers config.json semantics, lists expanded per block).
typedef struct df_unet_config {
    char arch[16];                  // "sdxl", "sd1", "sd2" or "custom" (informational)
    int in_channels, out_channels;  // 4, 4
    int n_levels;                   // len(block_out_channels)
    int block_out[DF_UNET_MAX_LEVELS]; // block_out_channels
    int layers_per_block;           // resnets per down block; up blocks have one more
    int down_attn[DF_UNET_MAX_LEVELS]; // 1: CrossAttnDownBlock2D, 0: DownBlock2D
    int up_attn[DF_UNET_MAX_LEVELS];   // per up block (up order): CrossAttnUpBlock2D / UpBlock2D
    int mid_attn;                   // 1: UNetMidBlock2DCrossAttn, 0: no mid block (type null)
    // Attention heads. diffusers quirk: config "attention_head_dim" is the number of heads
    // (num_attention_heads = num_attention_heads or attention_head_dim); head_dim = C / heads.
    int heads_down[DF_UNET_MAX_LEVELS];
    int heads_up[DF_UNET_MAX_LEVELS]; // reversed list
    int heads_mid;                  // last entry
    // Transformer layers (BasicTransformerBlocks) per attention, per block and resnet slot.
    int tl_down[DF_UNET_MAX_LEVELS][DF_UNET_MAX_LAYERS];
    int tl_up[DF_UNET_MAX_LEVELS][DF_UNET_MAX_LAYERS];
    int tl_mid;
    int cross_attention_dim;        // text width (768 SD1.x, 1024 SD2.x, 2048 SDXL)
    int use_linear_projection;      // proj_in/out Linear (1) or 1x1 conv (0)
    int norm_groups;                // norm_num_groups (32)
    float norm_eps;                 // resnets and conv_norm_out (1e-5)
    float transformer_norm_eps;     // Transformer2DModel.norm (1e-6 in diffusers)
    float layer_norm_eps;           // BasicTransformerBlock LayerNorms (1e-5)
    int flip_sin_to_cos;            // true
    float freq_shift;               // 0
    int time_proj_dim;              // block_out[0]
    int time_embed_dim;             // time_embedding_dim or 4 * block_out[0]
    int addition_embed;             // 0 none, 1 "text_time" (SDXL)
    int addition_time_embed_dim;    // 256 (SDXL)
    int add_in_dim;                 // projection_class_embeddings_input_dim (2816)
    int n_time_ids;                 // 6
    int text_embeds_dim;            // add_in_dim - n_time_ids * addition_time_embed_dim (1280)
    int center_input_sample;        // x = 2x - 1 first
    float resnet_out_scale;         // resnet_out_scale_factor (down/up resnets)
    float mid_out_scale;            // mid_block_scale_factor (mid resnets)
} df_unet_config;

// config.json of a diffusers UNet. Unsupported options (block types, class embeddings, other
// addition embeddings, non-default attention, act_fn != silu, ...) are DF_ERR_UNSUPPORTED naming
// the field and value; malformed JSON or wrong types are DF_ERR_FORMAT naming the field.
df_status df_unet_config_from_json(const char *path, df_unet_config *cfg);
// Derives the config from the (diffusers-named) tensors of `w`, e.g. of a single-file
// checkpoint: levels, channels, layers, attention placement, transformer depths, projection
// kind, context dim, addition embedding and time embedding dims come from names and shapes.
// Heads cannot be seen in the shapes: SD1.x-like (1x1 conv projections) use 8 heads, others
// head_dim 64 (SD2.x/SDXL), unless `ldm_yaml` (an LDM/SGM inference yaml, may be NULL) gives
// num_heads / num_head_channels. DF_ERR_FORMAT "not a UNet" if no conv_in, etc.
df_status df_unet_config_from_weights(const df_weights *w, const char *ldm_yaml,
                                      df_unet_config *cfg);
// Checks internal consistency (channels divisible by groups and heads, list lengths, ...).
df_status df_unet_config_validate(const df_unet_config *cfg);
// One-line summary for logs.
void df_unet_config_describe(const df_unet_config *cfg, char *buf, size_t cap);

typedef struct df_unet df_unet;

// Builds the UNet on `w` (ownership of w passes to the UNet, also on failure): every tensor is
// looked up and shape-checked (DF_ERR_FORMAT missing / DF_ERR_SHAPE mis-shaped, naming it);
// tensors the config does not use are DF_ERR_FORMAT "unexpected tensor(s) ..." naming them.
df_status df_unet_create(const df_unet_config *cfg, df_weights *w, df_unet **out);
// path: a pipeline folder (model_index.json + unet/), a unet folder (config.json + weights), or a
// single-file checkpoint (.safetensors; the config is derived from the tensors, see above;
// ldm_yaml optional). The single file stays mapped while the UNet lives.
df_status df_unet_load(const char *path, const char *ldm_yaml, df_unet **out);
void df_unet_destroy(df_unet *u); // accepts NULL
const df_unet_config *df_unet_get_config(const df_unet *u);
// Weight bytes as stored (mmapped) and f32 bytes cached by the UNet.
size_t df_unet_weight_bytes(const df_unet *u);
size_t df_unet_cache_bytes(const df_unet *u);
// f32 weight cache limit in MiB (default: the build option DF_UNET_CACHE_MB, 256): when all
// matrices fit they are converted once, else per use (0: always per use). Rebuilds the cache;
// DF_ERR_ARG after df_unet_plan. The tensor-parallel slices use the same limit.
df_status df_unet_set_weight_cache(df_unet *u, size_t limit_mb);
// Per-operation profile (CPU time, FLOPs by op class and level) printed to stderr by
// df_unet_destroy; default: the build option DF_UNET_PROFILE (OFF).
void df_unet_set_profile(df_unet *u, int on);
// Algorithm of the 3x3 convs (df_conv_algo, distrifuse/pipeline.h; default DIRECT).
void df_unet_set_conv_algo(df_unet *u, int algo);
// Compute dtype of the big convs and linears (--compute): bf16 = 1 runs them with bf16 inputs
// and f32 accumulation (kernels/gemm_bf16.h) where df_bf16_available() (AVX512_BF16 and the
// avx512 kernel variant), else f32. Returns the dtype now in effect (1 bf16, 0 f32). The
// tensor-parallel path stays f32. Default f32.
int df_unet_set_compute(df_unet *u, int bf16);
// Drops the resident pages of the mmapped weights (df_weights_release_pages); the UNet stays
// usable (pages fault back in). Returns the bytes advised.
size_t df_unet_release_weight_pages(df_unet *u);

// Plans the activation arena for B images of a full latent H x W processed in bands of
// band_rows rows (band_rows = H for a single rank). band_rows must be divisible by 2^(levels-1)
// unless band_rows == H (a whole image may have any size: downsampling gives ceil(n/2) and the
// upsamplers resize to the skip's size, sdxl.md §3.7). DF_ERR_SHAPE with the reason otherwise.
// Replans (frees the previous arena) when called again.
df_status df_unet_plan(df_unet *u, int B, int H, int W, int band_rows);
// Bytes of the planned activation arena + text cache + weight scratch.
size_t df_unet_arena_bytes(const df_unet *u);

// Conditioning for the next forwards (B must equal the planned B):
// enc [B][T_text][cross_attention_dim] (encoder_hidden_states): K/V of every attn2 layer are
// computed now and cached. SDXL (addition_embed text_time): text_embeds [B][text_embeds_dim]
// (pooled) and time_ids [B][n_time_ids] are required, else ignored (may be NULL).
df_status df_unet_set_text(df_unet *u, int B, const float *enc, int T_text,
                           const float *text_embeds, const float *time_ids);

// One UNet evaluation on the band of `ctx`: x [B][Hb][W][in_channels] -> out [B][Hb][W][out_ch].
// t [B]: timestep per image (float). No allocation happens here.
df_status df_unet_forward(df_unet *u, df_pctx *ctx, const float *x, const float *t, float *out);

// Debug hook: called with intermediate tensors (NHWC, band rows) during df_unet_forward:
// "time_proj" [B][1][1][time_proj_dim], "time_embedding", "add_time_proj" [B*n_ids][1][1][d],
// "add_embedding", "conv_in", "down_blocks.i" (after the downsampler), "mid_block",
// "up_blocks.i" (after the upsampler), "conv_norm_out" (GroupNorm only, before SiLU).
typedef void (*df_unet_debug_fn)(void *user, const char *name, const float *x, int B, int H,
                                 int W, int C);
void df_unet_set_debug(df_unet *u, df_unet_debug_fn fn, void *user);

// Multiply-adds of one forward per batch element at a full latent H x W (sdxl.md §8.1: every
// conv and linear incl. the attn2 K/V projections of the text, attention QK^T and AV; norms and
// activations excluded). FLOPs = 2 x MACs.
double df_unet_macs(const df_unet_config *cfg, int H, int W, int T_text);

#endif // DF_MODEL_UNET_H
