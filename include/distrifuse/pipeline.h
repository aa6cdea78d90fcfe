// distrifuse public API: text-to-image with SDXL / SD 1.x models (diffusers 0.24 semantics).
//
//     df_model *m;
//     if (df_model_load("models/sdxl", &m) != DF_OK) { puts(df_last_error()); ... }
//     df_gen_params p = df_gen_params_default();
//     p.prompt = "a red cube on a table";
//     df_image img = {0};
//     df_gen_info info;
//     if (df_generate(m, &p, &img, &info) == DF_OK)
//         df_image_save_png(&img, "cube.png", info.infotext);
//     df_image_free(&img);
//     df_model_free(m);
//
// Every function returning df_status records a message retrievable with df_last_error(). The
// library never prints (except through df_log, which the caller may silence) and never exits.
// Images are 8-bit RGB, row-major [height][width][3]. Latent tensors exchanged with the caller
// (init / save latent, the step callback) are f32 NCHW [1][4][height/8][width/8], torch layout.
#ifndef DF_PIPELINE_H
#define DF_PIPELINE_H

#include "distrifuse/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------
// Models

typedef enum df_arch {
    DF_ARCH_UNKNOWN = 0,
    DF_ARCH_SDXL, // StableDiffusionXLPipeline: two text encoders, added time/text embedding
    DF_ARCH_SD1,  // StableDiffusionPipeline (SD 1.x; one CLIP-L text encoder)
} df_arch;

const char *df_arch_name(df_arch a); // "sdxl", "sd1", "unknown"

typedef struct df_model df_model;

// Algorithm of the stride-1 3x3 convolutions (the programs' --conv-algo): the direct im2col +
// GEMM conv (bit-exact reference behaviour), Winograd F(4x4,3x3) / F(2x2,3x3) (about 2-4x fewer
// multiplications, rounding differs; src/kernels/winograd.c) on every eligible conv, or `auto`:
// Winograd only on the shapes where it measured faster. F2 / F4 force one tile size.
typedef enum df_conv_algo {
    DF_CONV_ALGO_DIRECT = 0,
    DF_CONV_ALGO_AUTO = 1,
    DF_CONV_ALGO_WINOGRAD = 2,
    DF_CONV_ALGO_WINO_F2 = 3,
    DF_CONV_ALGO_WINO_F4 = 4,
} df_conv_algo;
// "direct", "auto", "winograd", "winograd-f2", "winograd-f4" ("?" for others).
const char *df_conv_algo_name(int algo);
// Parses one of those names into *out; returns 1, or 0 (unknown name, *out untouched).
int df_conv_algo_parse(const char *s, int *out);

// Loads a model for text-to-image. `path` is either
//   - a diffusers pipeline folder (model_index.json; unet/, vae/, text_encoder/ [,
//     text_encoder_2/], tokenizer/ [, tokenizer_2/], scheduler/), weights in
//     *.safetensors or *.fp16.safetensors, stored F32 / F16 / BF16; or
//   - one original single-file checkpoint (.safetensors, LDM/SGM names). SDXL is recognised by
//     the second text encoder (conditioner.embedders.1.*), SD 1.x by cond_stage_model.*. An LDM
//     inference yaml with the same base name next to the file (x.safetensors -> x.yaml) is read
//     for the UNet head count when present. Tokenizers come from the vocabulary shipped with
//     distrifuse (data/clip, or df_load_params.data_dir/clip), the scheduler from the
//     architecture's reference config (SDXL: Euler, SD 1.x: PNDM).
// Weights stay memory-mapped in their stored dtype; compute is f32.
// Errors: DF_ERR_IO (missing files), DF_ERR_FORMAT (not a recognisable model, bad configs or
// tensors; the message names the file / tensor), DF_ERR_UNSUPPORTED (e.g. an SD 2.x
// v-prediction UNet config we do not handle). *out is NULL on failure.
df_status df_model_load(const char *path, df_model **out);

// Options of df_model_load_ex (the library reads no environment variables; the programs map
// DF_DATA_DIR, DF_UNET_CACHE_MB and DF_UNET_PROFILE onto these).
typedef struct df_load_params {
    const char *data_dir;    // folder holding clip/ (shipped CLIP vocabulary, for single-file
                             // checkpoints); NULL: the build option DF_DATA_DIR (<source>/data)
    long long weight_cache_mb; // UNet f32 weight cache limit (MiB); < 0: the build option
                               // DF_UNET_CACHE_MB (256). Matrices are converted once when all
                               // fit, else per use.
    int unet_profile;        // 1: per-operation UNet profile on stderr when the model is freed
    int conv_algo;           // df_conv_algo of the UNet's 3x3 convs (default DF_CONV_ALGO_DIRECT)
} df_load_params;
df_load_params df_load_params_default(void);
// df_model_load with options (lp NULL: the defaults).
df_status df_model_load_ex(const char *path, const df_load_params *lp, df_model **out);
void df_model_free(df_model *m); // accepts NULL

df_arch df_model_arch(const df_model *m);
// Default image size (unet sample_size x 8: SDXL 1024, SD 1.5 512), guidance (SDXL 5.0, SD1
// 7.5) and sampler (the scheduler config's class, e.g. "euler" for SDXL, "pndm" for SD 1.5).
void df_model_defaults(const df_model *m, int *width, int *height, float *cfg_scale,
                       const char **sampler);
// Short model name for metadata: the folder / file base name ("sd_xl_base_1.0").
const char *df_model_name(const df_model *m);
// One-line description of the loaded components (dims, dtypes, scheduler) for logs.
void df_model_describe(const df_model *m, char *buf, size_t cap);

// ---------------------------------------------------------------------------------------------
// Generation parameters

typedef enum df_vae_tiling {
    DF_VAE_TILE_AUTO = 0, // tiled decode only when the untiled decoder would need more than
                          // 4 GiB of activations (SDXL beyond about 1024x1024)
    DF_VAE_TILE_ON,       // diffusers enable_vae_tiling(): tiles when a latent side exceeds
                            // the VAE's tile size (SDXL 128, SD 1.5 64 latent pixels)
    DF_VAE_TILE_OFF,      // never tile (exact diffusers default)
} df_vae_tiling;

const char *df_vae_tiling_name(df_vae_tiling t); // "auto", "on", "off"

// Compute dtype of the UNet's (and the VAE's) big convolutions and linears (--compute): bf16
// inputs with f32 accumulation where the CPU has AVX512_BF16 (and the avx512 kernels run),
// else f32 with one warning.
typedef enum { DF_COMPUTE_F32 = 0, DF_COMPUTE_BF16 = 1 } df_compute_dtype;
const char *df_compute_name(df_compute_dtype c);            // "f32", "bf16" ("?" otherwise)
int df_compute_parse(const char *s, df_compute_dtype *out); // 1 if known, else 0

// Samplers: the name table of df_gen_params.sampler ("ddim", "euler", "euler_a", "dpm++2m",
// "pndm"); i in [0, df_sampler_count()). NULL out of range.
int df_sampler_count(void);
const char *df_sampler_name(int i);

// Progress: called after every UNet evaluation with step = 1..n_steps (model calls; PNDM makes
// steps + 1 of them) and the seconds spent denoising so far.
typedef void (*df_progress_fn)(void *user, int step, int n_steps, double elapsed_s);
// Latents after scheduler step `step` (0-based; diffusers' callback_on_step_end): NCHW f32
// [1][c][h][w], valid during the call only.
typedef void (*df_latents_fn)(void *user, int step, const float *latents, int c, int h, int w);

typedef struct df_gen_params {
    const char *prompt;            // required (may be "")
    const char *negative_prompt;   // NULL = None: SDXL with force_zeros_for_empty_prompt uses
                                   // zero uncond embeddings; SD 1.x encodes "". Default NULL
    const char *prompt_2;          // SDXL second text encoder prompt; NULL = prompt
    const char *negative_prompt_2; // SDXL; NULL = negative_prompt
    int width, height;             // pixels, multiples of 8; 0 = model default (default 0)
    int steps;                     // num_inference_steps, >= 1 (default 20)
    float cfg_scale;               // guidance scale; CFG runs when > 1; < 0 = model default
                                   // (SDXL 5.0, SD1 7.5) (default -1)
    float guidance_rescale;        // rescale_noise_cfg phi in [0, 1] (default 0)
    const char *sampler;           // "euler", "euler_a", "ddim", "dpm++2m", "pndm"; NULL = the
                                   // model's scheduler config (default NULL)
    int64_t seed;                  // torch CPU generator seed; < 0 = random (default 42)
    int clip_skip;                 // 0 = none; k skips the last k CLIP layers (default 0)
    df_vae_tiling vae_tiling;      // default DF_VAE_TILE_AUTO
    int parallel_vae;              // under MPI with several ranks: the decode is split into
                                   // one row band per rank (exact; see runtime/vae_dist.h);
                                   // 0: rank 0 decodes alone (default 1)
    int release_weights;           // 1: the resident pages of the mmapped text-encoder weights
                                   // are dropped after the prompt encoding, the UNet's before
                                   // the VAE decode (madvise MADV_DONTNEED: the mappings stay,
                                   // the next generation faults them back in from the page
                                   // cache); keeps the peak RSS to the largest phase (default 1)
    int decode;                    // 1: run the VAE and return an image; 0: latents only
                                   // (benchmarks; *image stays empty) (default 1)
    int check_finite;              // 1: stop at the first NaN / Inf in the UNet's block outputs
                                   // or the latents: DF_ERR_NONFINITE naming the step and the
                                   // layer, nothing written (default 0: the final latents are
                                   // checked once and a warning logged)
    const char *init_latent;       // safetensors file with one F32 tensor [1][4][h][w]: the
                                   // initial noise before the init_noise_sigma scaling
                                   // (diffusers `latents=`) instead of randn(seed); NULL = none
    const float *init_latent_data; // the same in memory (NCHW f32); used when init_latent is NULL
    const char *save_latent;       // writes the final latents (before the VAE) as
                                   // safetensors, tensor "latents" [1][4][h][w] F32; NULL = no
    int threads;                   // compute threads (OpenMP + OpenBLAS) of this call (the
                                   // caller's settings are put back after it); <= 0 uses the
                                   // current setting (by default all cores) (default 0)
    df_compute_dtype compute;      // UNet convs / linears: DF_COMPUTE_BF16 where the CPU has
                                   // AVX512_BF16, else f32 with one log line (default
                                   // DF_COMPUTE_F32)
    df_progress_fn progress;       // may be NULL
    df_latents_fn on_step_latents; // may be NULL
    df_progress_fn heartbeat;      // like progress, but on every rank of a distributed run
                                   // (watchdogs: --rank-timeout); may be NULL
    void *user;                    // passed to the callbacks
} df_gen_params;

// All defaults (documented above). The CLI only overrides fields.
df_gen_params df_gen_params_default(void);

// Checks the parameters against the model (sizes multiple of 8 and > 0, steps >= 1, known
// sampler, clip_skip within the encoder depth, ...). DF_ERR_ARG with the reason. m may be NULL
// for the model-independent checks.
df_status df_gen_params_validate(const df_model *m, const df_gen_params *p);

// ---------------------------------------------------------------------------------------------
// Output

typedef struct df_image {
    int width, height; // pixels
    uint8_t *rgb;      // [height][width][3], owned (df_image_free)
} df_image;

void df_image_free(df_image *img); // accepts NULL and empty images; leaves it empty
// Bytes of an 8-bit RGB image (0 if w or h <= 0 or on overflow).
size_t df_image_bytes(int width, int height);
// Writes an 8-bit RGB PNG atomically (PATH.tmp.<pid>, then rename); `parameters` (may be NULL)
// becomes a tEXt chunk "parameters" (A1111 infotext).
df_status df_image_save_png(const df_image *img, const char *path, const char *parameters);

typedef struct df_timings {
    double text_encode_s; // tokenize + text encoders
    double denoise_s;     // the sampling loop (UNet + scheduler)
    double vae_s;         // VAE decode + conversion to uint8
    double total_s;
    int unet_calls;       // model evaluations (CFG pairs count once)
    // Split of vae_s (rank 0): the parallel decode's own computation (incl. the uint8
    // conversion), its communication inside the decode (halo rows, GroupNorm sums, attention
    // K/V) and the gather of the image rows to rank 0; halo and gather are 0 without it.
    double vae_compute_s, vae_halo_s, vae_gather_s;
} df_timings;

// What a generation actually used (defaults resolved) and how long it took.
typedef struct df_gen_info {
    int64_t seed;        // the seed used (the random one when params.seed < 0)
    int width, height, steps;
    float cfg_scale, guidance_rescale;
    const char *sampler; // static string ("euler", ...)
    int vae_tiled;       // 1 if the decode was tiled
    df_timings timings;
    char infotext[4096]; // A1111 "parameters" text:
                         // "<prompt>\nNegative prompt: <neg>\nSteps: N, Sampler: X, CFG scale:
                         //  G, Seed: S, Size: WxH, Model: name" (the negative line only for
                         //  a non-empty negative prompt)
} df_gen_info;

// Runs the whole pipeline: tokenize, encode the prompt(s), sample, decode. `image` receives a
// new image (df_image_free) unless params->decode == 0; info (may be NULL) the resolved
// parameters and timings. On failure *image is left empty.
df_status df_generate(df_model *m, const df_gen_params *params, df_image *image,
                      df_gen_info *info);


// ---------------------------------------------------------------------------------------------
// Caption lists and batch generation (DistriFusion's generate_coco.py workflow)
//
// A batch of n images: image i has caption i (or the one prompt, repeated), seed SEED + i, and
// is written as DIR/{i:04d}.png (df_batch_dir_path) or under sd.cpp's -b names
// (df_batch_output_path). With the same parameters, image i is bit-identical to a single
// generation with prompt = caption i and seed = SEED + i.

typedef struct df_prompt_list df_prompt_list;

// Reads a caption list. The file is JSON when its first non-blank character is '[' or '{': a
// JSON array of strings, or a JSON object whose values (strings) are taken in the order their
// keys appear in the file. Otherwise every line is one caption (LF or CRLF; lines with only
// white space are skipped; a UTF-8 byte order mark is ignored). Errors (DF_ERR_IO unreadable,
// DF_ERR_FORMAT: bad JSON with the byte offset, a non-string item, a NUL byte, no caption at
// all) name the file.
df_status df_prompt_list_load(const char *path, df_prompt_list **out);
// The same from memory (text of len bytes; label names it in errors).
df_status df_prompt_list_parse(const char *text, size_t len, const char *label,
                               df_prompt_list **out);
int df_prompt_list_count(const df_prompt_list *l);
const char *df_prompt_list_get(const df_prompt_list *l, int i); // NULL when out of range
void df_prompt_list_free(df_prompt_list *l);                     // accepts NULL

// Shard k of `parts` (generate_coco.py --split k parts): chunk = ceil(n / parts), images
// [k * chunk, min((k + 1) * chunk, n)) (empty when k * chunk >= n). Requires 0 <= k < parts.
void df_batch_shard(int n, int k, int parts, int *begin, int *end);
// "DIR/0007.png" for i = 7 ({i:04d}: at least 4 digits).
void df_batch_dir_path(const char *dir, int i, char *buf, size_t cap);
// stable-diffusion.cpp's names for -b N with -o OUTPUT: the extension of OUTPUT's file name is
// replaced by ".png" for image 0, image i > 0 is BASE_{i+1}.png ("out.png" -> out.png,
// out_2.png, out_3.png, ...).
void df_batch_output_path(const char *output, int i, char *buf, size_t cap);

// The A1111 "parameters" text a generation with these parameters writes (defaults resolved
// against the model as df_generate does), without generating. p->seed must be >= 0.
df_status df_gen_infotext(const df_model *m, const df_gen_params *p, char *buf, size_t cap);
// 1 when `path` is a complete, valid PNG (every chunk's CRC, the pixel data and IEND) whose
// "parameters" text equals `parameters` (NULL: not compared); else 0 (missing, truncated,
// corrupt, or from other parameters). For resuming a batch.
int df_image_png_complete(const char *path, const char *parameters);

#ifdef __cplusplus
}
#endif
#endif // DF_PIPELINE_H
