// Text-to-image generation (StableDiffusionXLPipeline / StableDiffusionPipeline.__call__ of
// diffusers 0.24, sdxl.md §7): encode the prompt, sample, decode. See pipeline.h.
#include "pipeline/pipeline_impl.h"

#include "kernels/gemm_bf16.h"
#include "core/rng.h"
#include "io/image_png.h"
#include "model/pctx.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DF_MAX_IMAGE_SIDE 16384 // pixels; far beyond any SD model, keeps sizes overflow-free

const char *df_vae_tiling_name(df_vae_tiling t) {
    switch (t) {
    case DF_VAE_TILE_AUTO: return "auto";
    case DF_VAE_TILE_ON: return "on";
    case DF_VAE_TILE_OFF: return "off";
    default: return "?";
    }
}

static const char *const k_compute[] = {"f32", "bf16"};

const char *df_compute_name(df_compute_dtype c) {
    return (unsigned)c < sizeof k_compute / sizeof k_compute[0] ? k_compute[c] : "?";
}

int df_compute_parse(const char *s, df_compute_dtype *out) {
    for (unsigned i = 0; s && i < sizeof k_compute / sizeof k_compute[0]; i++)
        if (strcmp(s, k_compute[i]) == 0) {
            *out = (df_compute_dtype)i;
            return 1;
        }
    return 0;
}

// The samplers are the scheduler kinds after DF_SCHED_NONE, in their order.
int df_sampler_count(void) { return DF_SCHED_KIND_COUNT - 1; }

const char *df_sampler_name(int i) {
    return i >= 0 && i < df_sampler_count() ? df_sched_kind_name((df_sched_kind)(i + 1)) : NULL;
}

df_gen_params df_gen_params_default(void) {
    df_gen_params p;
    memset(&p, 0, sizeof p);
    p.prompt = NULL;
    p.negative_prompt = NULL;
    p.prompt_2 = NULL;
    p.negative_prompt_2 = NULL;
    p.width = 0;
    p.height = 0;
    p.steps = 20;
    p.cfg_scale = -1.0f;
    p.guidance_rescale = 0.0f;
    p.sampler = NULL;
    p.seed = 42;
    p.clip_skip = 0;
    p.vae_tiling = DF_VAE_TILE_AUTO;
    p.decode = 1;
    p.parallel_vae = 1;
    p.release_weights = 1;
    p.threads = 0;
    p.compute = DF_COMPUTE_F32;
    return p;
}

static const char k_samplers[] = "ddim, euler, euler_a, dpm++2m, pndm";

df_status df_gen_params_validate(const df_model *m, const df_gen_params *p) {
    DF_FAIL_IF(!p, DF_ERR_ARG, "NULL parameters");
    DF_FAIL_IF(!p->prompt, DF_ERR_ARG, "no prompt given");
    DF_FAIL_IF(p->compute != DF_COMPUTE_F32 && p->compute != DF_COMPUTE_BF16, DF_ERR_ARG,
               "unknown compute dtype %d (f32, bf16)", (int)p->compute);
    int f = m ? df_vae_scale_factor(m->vae) : 8;
    DF_FAIL_IF(p->width < 0 || p->width > DF_MAX_IMAGE_SIDE || p->width % f != 0, DF_ERR_ARG,
               "width %d must be a positive multiple of %d (at most %d)", p->width, f,
               DF_MAX_IMAGE_SIDE);
    DF_FAIL_IF(p->height < 0 || p->height > DF_MAX_IMAGE_SIDE || p->height % f != 0, DF_ERR_ARG,
               "height %d must be a positive multiple of %d (at most %d)", p->height, f,
               DF_MAX_IMAGE_SIDE);
    DF_FAIL_IF(p->steps < 1 || p->steps > 1000, DF_ERR_ARG, "steps %d must be in [1, 1000]",
               p->steps);
    DF_FAIL_IF(!isfinite(p->cfg_scale), DF_ERR_ARG, "cfg scale must be a finite number");
    DF_FAIL_IF(!(p->guidance_rescale >= 0.0f && p->guidance_rescale <= 1.0f), DF_ERR_ARG,
               "guidance rescale %g must be in [0, 1]", (double)p->guidance_rescale);
    if (p->sampler) {
        df_sched_kind k = DF_SCHED_NONE;
        if (df_sched_kind_parse(p->sampler, &k) != DF_OK || k == DF_SCHED_NONE) {
            df_clear_error();
            return DF_ERROR(DF_ERR_ARG, "unknown sampler '%s' (valid: %s)", p->sampler,
                            k_samplers);
        }
    }
    DF_FAIL_IF(p->clip_skip < 0, DF_ERR_ARG, "clip skip %d must be >= 0", p->clip_skip);
    if (m) {
        int L = df_clip_get_config(m->te1)->layers;
        if (m->te2 && df_clip_get_config(m->te2)->layers < L)
            L = df_clip_get_config(m->te2)->layers;
        DF_FAIL_IF(p->clip_skip > L - 1, DF_ERR_ARG,
                   "clip skip %d too large for a %d-layer text encoder (at most %d)",
                   p->clip_skip, L, L - 1);
    }
    DF_FAIL_IF((int)p->vae_tiling < DF_VAE_TILE_AUTO || (int)p->vae_tiling > DF_VAE_TILE_OFF,
               DF_ERR_ARG, "invalid vae tiling mode %d", (int)p->vae_tiling);
    DF_FAIL_IF((unsigned)p->compute > DF_COMPUTE_BF16, DF_ERR_ARG, "invalid compute dtype %d",
               (int)p->compute);
    if (m) { // the step count against the scheduler config (e.g. its largest timestep)
        df_sched_kind kind = m->sched_kind;
        if (p->sampler) DF_TRY(df_sched_kind_parse(p->sampler, &kind));
        df_sched_config sc = m->sched_cfg;
        if (kind == DF_SCHED_PNDM && sc.skip_prk_steps <= 0) sc.skip_prk_steps = 1;
        df_sched *s = NULL;
        df_status st = df_sched_create(kind, &sc, p->steps, 0, &s);
        df_sched_destroy(s);
        DF_TRY(st);
    }
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Images

void df_image_free(df_image *img) {
    if (!img) return;
    df_free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

size_t df_image_bytes(int width, int height) {
    size_t n = 0;
    if (width <= 0 || height <= 0) return 0;
    if (!df_i_mul_size((size_t)width, (size_t)height, &n) || !df_i_mul_size(n, 3, &n)) return 0;
    return n;
}

df_status df_image_save_png(const df_image *img, const char *path, const char *parameters) {
    DF_FAIL_IF(!img || !img->rgb || !path, DF_ERR_ARG, "no image or path");
    const char *keys[1] = {"parameters"};
    const char *vals[1] = {parameters};
    return df_png_write(path, img->rgb, img->width, img->height, keys, vals, parameters ? 1 : 0);
}

// Decoder output [H][W][3] in about [-1, 1] -> uint8 as diffusers' postprocess + numpy_to_pil:
// clamp(x / 2 + 0.5, 0, 1) in f32, then (x * 255).round() (round half to even).
static void to_uint8(const float *x, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        float v = x[i] / 2.0f + 0.5f;
        if (!(v >= 0.0f)) v = 0.0f; // also NaN
        if (v > 1.0f) v = 1.0f;
        out[i] = (uint8_t)rintf(v * 255.0f);
    }
}

// ---------------------------------------------------------------------------------------------
// Single-rank denoiser

static df_status single_begin(void *self, df_unet *unet, const df_cond *c, int h, int w) {
    df_denoiser_single_state *s = self;
    s->unet = unet;
    s->n_img = c->n_img;
    s->h = h;
    s->w = w;
    DF_TRY(df_unet_plan(unet, c->n_img, h, w, h));
    return df_unet_set_text(unet, c->n_img, c->enc, c->T, c->text_embeds, c->time_ids);
}

static df_status single_eval(void *self, int call, const float *x, float t, float *eps) {
    (void)call;
    df_denoiser_single_state *s = self;
    df_pctx ctx;
    df_pctx_single_init(&ctx, s->h);
    s->t[0] = s->t[1] = t;
    return df_unet_forward(s->unet, &ctx, x, s->t, eps);
}

void df_i_denoiser_single(df_denoiser *d, df_denoiser_single_state *state) {
    memset(state, 0, sizeof *state);
    d->self = state;
    d->root = 1;
    d->begin = single_begin;
    d->eval = single_eval;
    d->end = NULL;
    d->decode = NULL;
}

// ---------------------------------------------------------------------------------------------
// Generation

static uint64_t random_seed(void) {
    uint32_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&v, sizeof v, 1, f) != 1) v = 0;
        fclose(f);
    }
    if (v == 0) v = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16);
    return v;
}

// NCHW [c][h][w] <-> NHWC [h][w][c] (batch 1).
static void nchw_to_nhwc(const float *src, float *dst, int c, int h, int w) {
    for (int ci = 0; ci < c; ci++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                dst[((size_t)y * w + x) * c + ci] = src[((size_t)ci * h + y) * w + x];
}
static void nhwc_to_nchw(const float *src, float *dst, int c, int h, int w) {
    for (int ci = 0; ci < c; ci++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                dst[((size_t)ci * h + y) * w + x] = src[((size_t)y * w + x) * c + ci];
}

// Initial latent from a safetensors file: the tensor "latents", else the only tensor.
df_status df_i_read_init_latent(const char *path, int c, int h, int w, float *nchw) {
    df_st_file *f = NULL;
    DF_TRY(df_st_open(path, &f));
    const df_st_tensor *t = df_st_find(f, "latents");
    if (!t && df_st_count(f) == 1) t = df_st_get(f, 0);
    df_status st = DF_OK;
    if (!t) {
        st = DF_ERROR(DF_ERR_FORMAT, "%s: %d tensors and none named 'latents'", path,
                      df_st_count(f));
    } else if (t->ndim != 4 || t->shape[0] != 1 || t->shape[1] != c || t->shape[2] != h ||
               t->shape[3] != w) {
        char got[128] = "";
        size_t o = 0;
        for (int i = 0; i < t->ndim && o < sizeof got; i++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%lld", i ? ", " : "",
                                  (long long)t->shape[i]);
        st = DF_ERROR(DF_ERR_SHAPE,
                      "%s: tensor '%s' has shape [%s], expected [1, %d, %d, %d] (NCHW latent "
                      "of a %dx%d image)",
                      path, t->name, got, c, h, w, w * 8, h * 8);
    } else {
        st = df_st_read_f32(f, t->name, nchw, (size_t)c * h * w);
    }
    df_st_close(f);
    return st;
}

static df_status write_latent(const char *path, const float *nchw, int c, int h, int w) {
    df_st_writer *wr = NULL;
    DF_TRY(df_st_writer_create(&wr));
    const int64_t shape[4] = {1, c, h, w};
    df_status st = df_st_writer_add(wr, "latents", DF_DTYPE_F32, 4, shape, nchw);
    if (st == DF_OK) st = df_st_writer_meta(wr, "format", "pt");
    if (st == DF_OK) st = df_st_write(wr, path);
    df_st_writer_destroy(wr);
    return st;
}

static df_status tokenize(const df_tokenizer *tok, const char *text, const char *what,
                          int32_t ids[DF_TOK_CTX]) {
    int32_t mask[DF_TOK_CTX];
    size_t n = 0;
    DF_TRY(df_tokenizer_encode(tok, text, ids, mask, &n));
    if (n > DF_TOK_CTX - 2)
        df_log(DF_LOG_WARN, "%s has %zu tokens; only the first %d are used", what, n,
               DF_TOK_CTX - 2);
    return DF_OK;
}

static void make_infotext(const df_model *m, const df_gen_params *p, df_gen_info *gi) {
    char *b = gi->infotext;
    size_t cap = sizeof gi->infotext, o = 0;
#define DF_APPEND(...)                                                                         \
    do {                                                                                       \
        if (o < cap) {                                                                         \
            int n_ = snprintf(b + o, cap - o, __VA_ARGS__);                                    \
            if (n_ > 0) o += (size_t)n_;                                                       \
        }                                                                                      \
    } while (0)
    DF_APPEND("%s\n", p->prompt);
    if (p->negative_prompt && *p->negative_prompt)
        DF_APPEND("Negative prompt: %s\n", p->negative_prompt);
    DF_APPEND("Steps: %d, Sampler: %s, CFG scale: %g, Seed: %lld, Size: %dx%d, Model: %s",
              gi->steps, gi->sampler, (double)gi->cfg_scale, (long long)gi->seed, gi->width,
              gi->height, df_model_name(m));
    if (p->clip_skip > 0) DF_APPEND(", Clip skip: %d", p->clip_skip + 1);
    if (gi->guidance_rescale > 0) DF_APPEND(", Guidance rescale: %g", (double)gi->guidance_rescale);
#undef DF_APPEND
    if (o >= cap) gi->infotext[cap - 1] = 0;
}

// ---- non-finite values (df_gen_params.check_finite)

// Index of the first non-finite value of x[0..n), or n.
static size_t first_nonfinite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

typedef struct finite_state {
    char layer[96]; // first UNet block output with a non-finite value ("" = none yet)
    float value;
} finite_state;

static void finite_hook(void *user, const char *name, const float *x, int B, int H, int W,
                        int C) {
    finite_state *fs = user;
    if (fs->layer[0]) return;
    const size_t n = (size_t)B * H * W * C, i = first_nonfinite(x, n);
    if (i < n) {
        snprintf(fs->layer, sizeof fs->layer, "%s", name);
        fs->value = x[i];
    }
}

static df_status nonfinite_error(int step, int calls, const char *where, float v) {
    return DF_ERROR(DF_ERR_NONFINITE, "non-finite value (%s) at step %d/%d in %s",
                    isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf"), step, calls, where);
}

static df_status generate(df_model *m, const df_gen_params *p, const df_denoiser *den,
                          df_image *image, df_gen_info *info);

// p->threads > 0 applies to this call only: the caller's thread settings are put back.
// The parameters a generation uses, model defaults resolved (everything but the seed); kind
// (may be NULL) receives the sampler.
static df_status resolve_info(const df_model *m, const df_gen_params *p, df_gen_info *gi,
                              df_sched_kind *kind_out) {
    memset(gi, 0, sizeof *gi);
    int defW, defH;
    float defG;
    df_model_defaults(m, &defW, &defH, &defG, NULL);
    gi->width = p->width > 0 ? p->width : defW;
    gi->height = p->height > 0 ? p->height : defH;
    gi->steps = p->steps;
    gi->cfg_scale = p->cfg_scale >= 0 ? p->cfg_scale : defG;
    gi->guidance_rescale = p->guidance_rescale;
    df_sched_kind kind = m->sched_kind;
    if (p->sampler) DF_TRY(df_sched_kind_parse(p->sampler, &kind));
    gi->sampler = df_sched_kind_name(kind);
    if (kind_out) *kind_out = kind;
    return DF_OK;
}

df_status df_gen_infotext(const df_model *m, const df_gen_params *p, char *buf, size_t cap) {
    DF_FAIL_IF(!m || !p || !buf || cap == 0, DF_ERR_ARG, "NULL argument");
    DF_FAIL_IF(p->seed < 0, DF_ERR_ARG, "the parameters text of a random seed is not known");
    DF_TRY(df_gen_params_validate(m, p));
    df_gen_info gi;
    DF_TRY(resolve_info(m, p, &gi, NULL));
    gi.seed = p->seed;
    make_infotext(m, p, &gi);
    snprintf(buf, cap, "%s", gi.infotext);
    return DF_OK;
}

df_status df_i_generate(df_model *m, const df_gen_params *p, const df_denoiser *den,
                        df_image *image, df_gen_info *info) {
    if (!p || p->threads <= 0) return generate(m, p, den, image, info);
    const df_threads_state saved = df_threads_save();
    df_set_threads(p->threads);
    df_status st = generate(m, p, den, image, info);
    df_threads_restore(&saved);
    return st;
}

static df_status generate(df_model *m, const df_gen_params *p, const df_denoiser *den,
                          df_image *image, df_gen_info *info) {
    DF_FAIL_IF(!m || !p || !den, DF_ERR_ARG, "NULL argument");
    if (image) memset(image, 0, sizeof *image);
    DF_TRY(df_gen_params_validate(m, p));
    DF_FAIL_IF(p->decode && !image && den->root, DF_ERR_ARG, "no image to write into");
    const double t_start = df_time_s();

    // ---- resolve the parameters
    df_gen_info gi;
    df_sched_kind kind;
    DF_TRY(resolve_info(m, p, &gi, &kind));
    gi.seed = p->seed >= 0 ? p->seed : (int64_t)random_seed();

    const int f = df_vae_scale_factor(m->vae);
    const int h = gi.height / f, w = gi.width / f;
    const df_unet_config *ucfg = df_unet_get_config(m->unet);
    const int C = ucfg->in_channels;
    const int cfg_on = gi.cfg_scale > 1.0f;
    const int n_img = cfg_on ? 2 : 1;
    const size_t n = (size_t)h * w * C; // one latent

    const df_clip_config *c1 = df_clip_get_config(m->te1);
    const df_clip_config *c2 = m->te2 ? df_clip_get_config(m->te2) : NULL;
    const int T = DF_CLIP_TOKENS;
    const int D = c1->hidden + (c2 ? c2->hidden : 0);
    const int P = c2 ? c2->projection_dim : 0;

    // ---- buffers
    df_status st = DF_OK;
    df_sched *s = NULL;
    float *enc = df_calloc((size_t)n_img * T * D, sizeof(float)); // [n_img][T][D]
    float *pooled = P ? df_calloc((size_t)n_img * P, sizeof(float)) : NULL; // [n_img][P]
    float time_ids[2 * 6];                                         // [n_img][6]
    float *x = df_malloc(n * sizeof(float));                       // [h][w][C] latents
    float *xin = df_malloc((size_t)n_img * n * sizeof(float));     // [n_img][h][w][C]
    float *epsb = df_malloc((size_t)n_img * n * sizeof(float));    // [n_img][h][w][C]
    float *eps = df_malloc(n * sizeof(float));                     // [h][w][C] guided
    float *noise = NULL;                                           // [h][w][C] euler_a
    float *nchw = df_malloc(n * sizeof(float));                    // [C][h][w] callbacks/files
    float *img_f = NULL;                                           // [H][W][3]
    int began = 0;
    finite_state fin;
    memset(&fin, 0, sizeof fin);
    if (!enc || (P && !pooled) || !x || !xin || !epsb || !eps || !nchw) {
        st = DF_ERROR(DF_ERR_NOMEM, "pipeline buffers for a %dx%d latent", w, h);
        goto done;
    }

    // ---- 1. prompt encoding (sdxl.md §5.2)
    double t0 = df_time_s();
    {
        int32_t ids1[DF_TOK_CTX], ids2[DF_TOK_CTX], nid1[DF_TOK_CTX], nid2[DF_TOK_CTX];
        float *cond_enc = enc + (cfg_on ? (size_t)T * D : 0);
        if ((st = tokenize(m->tok1, p->prompt, "prompt", ids1)) != DF_OK) goto done;
        if (m->arch == DF_ARCH_SDXL) {
            const char *p2 = p->prompt_2 ? p->prompt_2 : p->prompt;
            if ((st = tokenize(m->tok2, p2, "prompt_2", ids2)) != DF_OK) goto done;
            const int32_t *n1 = NULL, *n2 = NULL;
            if (cfg_on && !(p->negative_prompt == NULL && m->force_zeros)) {
                const char *neg = p->negative_prompt ? p->negative_prompt : "";
                const char *neg2 = p->negative_prompt_2 ? p->negative_prompt_2 : neg;
                if ((st = tokenize(m->tok1, neg, "negative prompt", nid1)) != DF_OK) goto done;
                if ((st = tokenize(m->tok2, neg2, "negative prompt 2", nid2)) != DF_OK)
                    goto done;
                n1 = nid1;
                n2 = nid2;
            }
            st = df_sdxl_encode_prompt(m->te1, m->te2, ids1, ids2, n1, n2, m->force_zeros,
                                       p->clip_skip, cond_enc, pooled + (cfg_on ? P : 0),
                                       cfg_on ? enc : NULL, cfg_on ? pooled : NULL);
            if (st != DF_OK) goto done;
            // add_time_ids = original_size + crops_coords_top_left + target_size, per image
            for (int i = 0; i < n_img; i++) {
                float *t6 = time_ids + 6 * i;
                t6[0] = (float)gi.height;
                t6[1] = (float)gi.width;
                t6[2] = 0.0f;
                t6[3] = 0.0f;
                t6[4] = (float)gi.height;
                t6[5] = (float)gi.width;
            }
        } else {
            const int32_t *n1 = NULL;
            if (cfg_on) {
                const char *neg = p->negative_prompt ? p->negative_prompt : "";
                if ((st = tokenize(m->tok1, neg, "negative prompt", nid1)) != DF_OK) goto done;
                n1 = nid1;
            }
            st = df_sd15_encode_prompt(m->te1, ids1, n1, p->clip_skip, cond_enc,
                                       cfg_on ? enc : NULL);
            if (st != DF_OK) goto done;
        }
    }
    gi.timings.text_encode_s = df_time_s() - t0;
    if (p->release_weights) { // the encoders are done: their pages leave the RSS (issue 11.8)
        df_clip_release_weight_pages(m->te1);
        df_clip_release_weight_pages(m->te2);
    }

    // ---- 2. scheduler and initial latents (sdxl.md §7.1 steps 2-3, §7.3)
    {
        df_sched_config sc = m->sched_cfg;
        if (kind == DF_SCHED_PNDM && sc.skip_prk_steps <= 0) {
            df_log(DF_LOG_WARN, "pndm: the scheduler config does not set skip_prk_steps; "
                                "using PLMS steps only (skip_prk_steps = true)");
            sc.skip_prk_steps = 1;
        }
        if ((st = df_sched_create(kind, &sc, gi.steps, n, &s)) != DF_OK) goto done;
    }
    df_rng rng;
    df_rng_seed(&rng, (uint64_t)gi.seed);
    if (p->init_latent || p->init_latent_data) {
        if (p->init_latent) {
            if ((st = df_i_read_init_latent(p->init_latent, C, h, w, nchw)) != DF_OK) goto done;
            nchw_to_nhwc(nchw, x, C, h, w);
        } else {
            nchw_to_nhwc(p->init_latent_data, x, C, h, w);
        }
    } else if ((st = df_sched_randn(&rng, 1, C, h, w, 1, x)) != DF_OK) {
        goto done;
    }
    df_sched_init_latents(s, x, n);
    if (df_sched_needs_noise(s)) {
        noise = df_malloc(n * sizeof(float));
        if (!noise) {
            st = DF_ERROR(DF_ERR_NOMEM, "noise buffer");
            goto done;
        }
    }

    // ---- 3. denoising loop
    df_vae_set_compute(m->vae, p->compute == DF_COMPUTE_BF16);
    if (!df_unet_set_compute(m->unet, p->compute == DF_COMPUTE_BF16) &&
        p->compute == DF_COMPUTE_BF16) {
        static int told; // once per process
        if (!told)
            df_log(DF_LOG_WARN, "--compute bf16: %s; computing in f32",
                   df_bf16_unavailable_reason());
        told = 1;
    }
    t0 = df_time_s();
    {
        df_cond cond = {.n_img = n_img, .T = T, .D = D, .enc = enc, .P = P,
                        .text_embeds = pooled, .time_ids = P ? time_ids : NULL};
        if (den->begin && (st = den->begin(den->self, m->unet, &cond, h, w)) != DF_OK)
            goto done;
        began = 1;
        const int calls = df_sched_n_calls(s);
        if (p->check_finite) df_unet_set_debug(m->unet, finite_hook, &fin);
        for (int i = 0; i < calls; i++) {
            const float t = df_sched_timestep(s, i);
            if ((st = df_sched_scale_model_input(s, i, x, xin, n)) != DF_OK) goto done;
            if (n_img == 2) memcpy(xin + n, xin, n * sizeof(float));
            if ((st = den->eval(den->self, i, xin, t, epsb)) != DF_OK) goto done;
            if (p->check_finite) {
                size_t k = first_nonfinite(epsb, (size_t)n_img * n);
                if (fin.layer[0] || k < (size_t)n_img * n) {
                    char where[128];
                    snprintf(where, sizeof where, "the UNet's %s", fin.layer[0] ? fin.layer
                                                                               : "output");
                    st = nonfinite_error(i + 1, calls, where, fin.layer[0] ? fin.value : epsb[k]);
                    goto done;
                }
            }
            const float *e = epsb;
            if (cfg_on) {
                st = df_cfg_combine(eps, epsb, epsb + n, 1, n, gi.cfg_scale,
                                    gi.guidance_rescale);
                if (st != DF_OK) goto done;
                e = eps;
            }
            if (noise && (st = df_sched_randn(&rng, 1, C, h, w, 1, noise)) != DF_OK) goto done;
            if ((st = df_sched_step(s, i, e, x, n, noise, NULL)) != DF_OK) goto done;
            if (p->check_finite) {
                size_t k = first_nonfinite(e, n), k2 = first_nonfinite(x, n);
                if (k < n) {
                    st = nonfinite_error(i + 1, calls, "the guided noise prediction", e[k]);
                    goto done;
                }
                if (k2 < n) {
                    st = nonfinite_error(i + 1, calls, "the latents after the sampler step",
                                         x[k2]);
                    goto done;
                }
            }
            gi.timings.unet_calls++;
            if (den->root && p->on_step_latents) {
                nhwc_to_nchw(x, nchw, C, h, w);
                p->on_step_latents(p->user, i, nchw, C, h, w);
            }
            if (den->root && p->progress) p->progress(p->user, i + 1, calls, df_time_s() - t0);
            if (p->heartbeat) p->heartbeat(p->user, i + 1, calls, df_time_s() - t0);
        }
    }
    gi.timings.denoise_s = df_time_s() - t0;
    if (!p->check_finite && den->root) { // one warning, no cost per step
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += !isfinite(x[i]);
        if (bad)
            df_log(DF_LOG_WARN, "the final latents hold %zu non-finite values (NaN/Inf) of %zu: "
                   "the output is not meaningful (check_finite / --check-finite finds the step "
                   "and the layer)", bad, n);
    }

    // ---- 4. outputs (root only)
    if (den->root && p->save_latent) {
        nhwc_to_nchw(x, nchw, C, h, w);
        if ((st = write_latent(p->save_latent, nchw, C, h, w)) != DF_OK) goto done;
    }
    const int par_vae = den->decode != NULL && p->parallel_vae; // every process decodes a band
    if (p->decode && (den->root || par_vae)) {
        if (p->release_weights) df_unet_release_weight_pages(m->unet); // before the decode
        t0 = df_time_s();
        const float sf = df_vae_get_config(m->vae)->scaling_factor;
        for (size_t i = 0; i < n; i++) x[i] = x[i] / sf; // latents / scaling_factor
        df_vae_decode_opts vo;
        memset(&vo, 0, sizeof vo);
        vo.tiling = p->vae_tiling == DF_VAE_TILE_ON    ? DF_VAE_TILING_FORCE
                    : p->vae_tiling == DF_VAE_TILE_OFF ? DF_VAE_TILING_OFF
                                                       : DF_VAE_TILING_AUTO;
        gi.vae_tiled = df_vae_decode_tiles(m->vae, h, w, &vo);
        const int HP = h * f, WP = w * f;
        const int oc = df_vae_get_config(m->vae)->out_channels;
        if (oc != 3) { // a model property: the same on every process
            st = DF_ERROR(DF_ERR_UNSUPPORTED, "VAE decodes %d channels (RGB expected)", oc);
            goto done;
        }
        size_t npx = df_image_bytes(WP, HP);
        if (den->root) {
            img_f = df_malloc(npx * sizeof(float));
            image->rgb = df_malloc(npx);
            if (!img_f || !image->rgb) {
                df_free(image->rgb);
                image->rgb = NULL;
                df_free(img_f);
                img_f = NULL;
                if (!par_vae) {
                    st = DF_ERROR(DF_ERR_NOMEM, "image buffers %dx%d", WP, HP);
                    goto done;
                }
            }
        }
        if (par_vae) {
            // a NULL image on the root makes every process fail together
            st = den->decode(den->self, m->vae, x, h, w, &vo, img_f, &gi.timings, &gi.vae_tiled);
            if (st == DF_OK && den->root && !img_f)
                st = DF_ERROR(DF_ERR_NOMEM, "image buffers %dx%d", WP, HP);
        } else {
            st = df_vae_decode(m->vae, x, 1, h, w, img_f, &vo);
        }
        if (st != DF_OK) {
            if (den->root) {
                df_free(image->rgb);
                image->rgb = NULL;
            }
            goto done;
        }
        if (den->root) {
            to_uint8(img_f, npx, image->rgb);
            image->width = WP;
            image->height = HP;
        }
        gi.timings.vae_s = df_time_s() - t0;
        gi.timings.vae_compute_s =
            gi.timings.vae_s - gi.timings.vae_halo_s - gi.timings.vae_gather_s;
    }
    gi.timings.total_s = df_time_s() - t_start;
    make_infotext(m, p, &gi);
    if (info) *info = gi;

done:
    if (p->check_finite) df_unet_set_debug(m->unet, NULL, NULL);
    if (began && den->end) den->end(den->self);
    df_sched_destroy(s);
    df_free(enc);
    df_free(pooled);
    df_free(x);
    df_free(xin);
    df_free(epsb);
    df_free(eps);
    df_free(noise);
    df_free(nchw);
    df_free(img_f);
    return st;
}

// df_generate: src/pipeline/engine.c (the one path of every generation).
