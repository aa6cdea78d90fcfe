// Loading a text-to-image model: diffusers pipeline folder or one single-file checkpoint
// (see include/distrifuse/pipeline.h).
#include "pipeline/pipeline_impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef DF_CONV_ALGO_DEFAULT // build option (CMake): the default df_conv_algo
#    define DF_CONV_ALGO_DEFAULT 0
#endif

const char *df_arch_name(df_arch a) {
    switch (a) {
    case DF_ARCH_SDXL: return "sdxl";
    case DF_ARCH_SD1: return "sd1";
    default: return "unknown";
    }
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static df_status join(char *buf, size_t cap, const char *a, const char *b) {
    int n = snprintf(buf, cap, "%s/%s", a, b);
    DF_FAIL_IF(n < 0 || (size_t)n >= cap, DF_ERR_ARG, "path too long: %s/%s", a, b);
    return DF_OK;
}

// Reads a whole (small) text file; *out is malloc'ed and NUL-terminated.
static df_status read_text(const char *path, char **out) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    DF_FAIL_IF(!f, DF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (n + 1 >= cap) {
            if (cap > ((size_t)16 << 20)) break; // configs are small: refuse anything huge
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    DF_FAIL_IF(!buf, DF_ERR_NOMEM, "reading %s", path);
    if (err) {
        free(buf);
        return DF_ERROR(DF_ERR_IO, "cannot read %s", path);
    }
    buf[n] = 0;
    *out = buf;
    return DF_OK;
}

static df_status read_json(const char *path, cJSON **out) {
    char *text = NULL;
    DF_TRY(read_text(path, &text));
    *out = cJSON_Parse(text);
    free(text);
    DF_FAIL_IF(!*out, DF_ERR_FORMAT, "%s: invalid JSON", path);
    return DF_OK;
}

// model_index.json: the pipeline class and force_zeros_for_empty_prompt.
static df_status read_model_index(const char *dir, df_model *m, int *have_fz) {
    char p[4200];
    DF_TRY(join(p, sizeof p, dir, "model_index.json"));
    *have_fz = 0;
    if (!is_file(p)) return DF_OK;
    cJSON *j = NULL;
    DF_TRY(read_json(p, &j));
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(j, "_class_name");
    if (cJSON_IsString(cls)) {
        if (strstr(cls->valuestring, "XL")) m->arch = DF_ARCH_SDXL;
        else if (strcmp(cls->valuestring, "StableDiffusionPipeline") == 0) m->arch = DF_ARCH_SD1;
        else {
            df_status st = DF_ERROR(DF_ERR_UNSUPPORTED,
                                    "%s: pipeline class '%s' is not supported (expected "
                                    "StableDiffusionXLPipeline or StableDiffusionPipeline)",
                                    p, cls->valuestring);
            cJSON_Delete(j);
            return st;
        }
    }
    const cJSON *fz = cJSON_GetObjectItemCaseSensitive(j, "force_zeros_for_empty_prompt");
    if (cJSON_IsBool(fz)) {
        m->force_zeros = cJSON_IsTrue(fz);
        *have_fz = 1;
    }
    cJSON_Delete(j);
    return DF_OK;
}

// unet/config.json sample_size (0 if absent).
static int read_sample_size(const char *dir) {
    char p[4200];
    if (join(p, sizeof p, dir, "unet/config.json") != DF_OK) return 0;
    cJSON *j = NULL;
    if (!is_file(p) || read_json(p, &j) != DF_OK) {
        df_clear_error();
        return 0;
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "sample_size");
    int v = cJSON_IsNumber(s) ? s->valueint : 0;
    if (cJSON_IsArray(s) && cJSON_GetArraySize(s) > 0) v = cJSON_GetArrayItem(s, 0)->valueint;
    cJSON_Delete(j);
    return v > 0 ? v : 0;
}

// Tokenizer of a folder if present, else the shipped vocabulary with `pad` (-1: config default).
static df_status load_tokenizer(const df_model *m, const char *dir, const char *sub, int pad,
                                df_tokenizer **out) {
    char p[4200];
    if (dir) {
        DF_TRY(join(p, sizeof p, dir, sub));
        char v[4300];
        DF_TRY(join(v, sizeof v, p, "vocab.json"));
        if (is_file(v)) return df_tokenizer_load(p, -1, out);
    }
    char def[4096];
    df_tokenizer_default_dir(m->lp.data_dir, def, sizeof def);
    df_status st = df_tokenizer_load(def, pad, out);
    if (st != DF_OK) {
        return DF_ERROR(st, "no tokenizer%s%s and the shipped CLIP vocabulary (%s) is not "
                        "readable (set DF_DATA_DIR, or df_load_params.data_dir, to the folder "
                        "holding clip/): %s",
                        dir ? " in " : "", dir ? p : "", def, df_last_error());
    }
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Configs derived from single-file tensors

static int64_t dim_of(const df_weights *w, const char *name, int d) {
    const df_st_tensor *t = df_weights_find(w, name);
    if (!t || d >= t->ndim) return -1;
    return t->shape[d];
}

// CLIP text config from the tensor shapes. The head count is not visible in the shapes: widths
// that are multiples of 64 use head_dim 64 (CLIP-L 12 heads, OpenCLIP bigG 20), smaller test
// models head_dim 8.
static df_status clip_config_from_weights(const df_weights *w, int which, df_clip_config *cfg) {
    if (which == 1) df_clip_config_clip_l(cfg);
    else df_clip_config_bigg(cfg);
    const char *pre = df_weights_find(w, "text_model.embeddings.token_embedding.weight")
                          ? "text_model." : "";
    char n[256];
    snprintf(n, sizeof n, "%sembeddings.token_embedding.weight", pre);
    int64_t V = dim_of(w, n, 0), D = dim_of(w, n, 1);
    snprintf(n, sizeof n, "%sembeddings.position_embedding.weight", pre);
    int64_t Pm = dim_of(w, n, 0);
    snprintf(n, sizeof n, "%sencoder.layers.0.mlp.fc1.weight", pre);
    int64_t F = dim_of(w, n, 0);
    DF_FAIL_IF(V < 1 || D < 1 || Pm < 1 || F < 1, DF_ERR_FORMAT,
               "%s: text encoder %d: missing embeddings or layer 0 tensors", df_weights_path(w),
               which);
    int L = 0;
    for (;;) {
        snprintf(n, sizeof n, "%sencoder.layers.%d.mlp.fc1.weight", pre, L);
        if (!df_weights_find(w, n)) break;
        L++;
    }
    cfg->vocab = (int)V;
    cfg->hidden = (int)D;
    cfg->max_positions = (int)Pm;
    cfg->intermediate = (int)F;
    cfg->layers = L;
    cfg->heads = (D % 64 == 0) ? (int)(D / 64) : (D % 8 == 0 ? (int)(D / 8) : 1);
    int64_t P = dim_of(w, "text_projection.weight", 0);
    cfg->has_projection = P > 0 ? 1 : 0;
    if (P > 0) cfg->projection_dim = (int)P;
    return DF_OK;
}

// VAE config from the decoder tensor shapes, on top of the SD / SDXL preset.
static df_status vae_config_from_weights(const df_weights *w, int sdxl, df_vae_config *cfg) {
    df_vae_config_sd(cfg, sdxl);
    char n[256];
    int L = 0;
    for (; L < DF_VAE_MAX_LEVELS; L++) {
        snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.0.conv2.weight", L);
        if (!df_weights_find(w, n)) break;
    }
    DF_FAIL_IF(L < 1, DF_ERR_FORMAT, "%s: no VAE decoder tensors (decoder.up_blocks.0...)",
               df_weights_path(w));
    cfg->levels = L;
    for (int i = 0; i < L; i++) {
        snprintf(n, sizeof n, "decoder.up_blocks.%d.resnets.0.conv2.weight", i);
        cfg->block_out[L - 1 - i] = (int)dim_of(w, n, 0);
    }
    int R = 0;
    for (;; R++) {
        snprintf(n, sizeof n, "decoder.up_blocks.0.resnets.%d.conv1.weight", R);
        if (!df_weights_find(w, n)) break;
    }
    cfg->layers_per_block = R - 1;
    int64_t zc = dim_of(w, "decoder.conv_in.weight", 1);
    if (zc > 0) cfg->latent_channels = (int)zc;
    int64_t oc = dim_of(w, "decoder.conv_out.weight", 0);
    if (oc > 0) cfg->out_channels = (int)oc;
    cfg->use_post_quant_conv = df_weights_find(w, "post_quant_conv.weight") != NULL;
    cfg->use_quant_conv = df_weights_find(w, "quant_conv.weight") != NULL;
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------

static df_status load_folder(df_model *m, const char *dir) {
    int have_fz = 0;
    DF_TRY(read_model_index(dir, m, &have_fz));
    char p[4200];
    DF_TRY(join(p, sizeof p, dir, "unet"));
    DF_FAIL_IF(!is_dir(p), DF_ERR_FORMAT,
               "%s is not a diffusers pipeline folder (no unet/ subfolder) nor a .safetensors "
               "checkpoint", dir);
    if (m->arch == DF_ARCH_UNKNOWN) {
        DF_TRY(join(p, sizeof p, dir, "text_encoder_2"));
        m->arch = is_dir(p) ? DF_ARCH_SDXL : DF_ARCH_SD1;
    }
    if (!have_fz) m->force_zeros = m->arch == DF_ARCH_SDXL; // diffusers' __init__ default
    m->sample_size = read_sample_size(dir);

    DF_TRY(df_unet_load(dir, NULL, &m->unet));
    DF_TRY(df_vae_load(dir, "vae", 0, &m->vae));
    DF_TRY(df_clip_load(dir, "text_encoder", &m->te1));
    if (m->arch == DF_ARCH_SDXL) DF_TRY(df_clip_load(dir, "text_encoder_2", &m->te2));
    DF_TRY(load_tokenizer(m, dir, "tokenizer", -1, &m->tok1));
    if (m->arch == DF_ARCH_SDXL) DF_TRY(load_tokenizer(m, dir, "tokenizer_2", DF_TOK_PAD_SDXL2,
                                                      &m->tok2));

    DF_TRY(join(p, sizeof p, dir, "scheduler/scheduler_config.json"));
    if (is_file(p)) {
        DF_TRY(df_sched_config_load_json(p, &m->sched_cfg, &m->sched_kind));
        if (m->sched_kind == DF_SCHED_NONE)
            df_log(DF_LOG_WARN, "%s: scheduler class not supported; using %s", p,
                   m->arch == DF_ARCH_SDXL ? "euler" : "pndm");
    } else {
        m->sched_cfg = df_sched_config_default_sdxl();
        m->sched_cfg.skip_prk_steps = 1;
    }
    return DF_OK;
}

static df_status load_single(df_model *m, const char *file) {
    m->single_file = 1;
    df_st_file *f = NULL;
    DF_TRY(df_st_open(file, &f));
    int sdxl = 0, sd1 = 0, unet = 0;
    for (int i = 0; i < df_st_count(f); i++) {
        const char *n = df_st_get(f, i)->name;
        if (strncmp(n, "conditioner.embedders.1.", 24) == 0) sdxl = 1;
        if (strncmp(n, "cond_stage_model.", 17) == 0) sd1 = 1;
        if (strncmp(n, "model.diffusion_model.", 22) == 0) unet = 1;
    }
    df_status st = DF_OK;
    if (!unet || (!sdxl && !sd1))
        st = DF_ERROR(DF_ERR_FORMAT,
                      "%s: not a Stable Diffusion checkpoint (no model.diffusion_model.* UNet "
                      "or no cond_stage_model.* / conditioner.embedders.* text encoder%s)",
                      file, unet ? "" : "; a diffusers folder must be given as the folder");
    m->arch = sdxl ? DF_ARCH_SDXL : DF_ARCH_SD1;
    m->force_zeros = sdxl;
    m->sample_size = sdxl ? 128 : 64;
    df_clip_config c1, c2;
    df_vae_config vc;
    if (st == DF_OK) st = df_weights_from_single(f, "text_encoder", &m->w_te1);
    if (st == DF_OK) st = clip_config_from_weights(m->w_te1, 1, &c1);
    if (st == DF_OK) {
        c1.act = DF_CLIP_ACT_QUICK_GELU;
        st = df_clip_create(&c1, m->w_te1, &m->te1);
    }
    if (st == DF_OK && sdxl) st = df_weights_from_single(f, "text_encoder_2", &m->w_te2);
    if (st == DF_OK && sdxl) st = clip_config_from_weights(m->w_te2, 2, &c2);
    if (st == DF_OK && sdxl) {
        c2.act = DF_CLIP_ACT_GELU;
        st = df_clip_create(&c2, m->w_te2, &m->te2);
    }
    if (st == DF_OK) st = df_weights_from_single(f, "vae", &m->w_vae);
    if (st == DF_OK) st = vae_config_from_weights(m->w_vae, sdxl, &vc);
    if (st == DF_OK) st = df_vae_create(&vc, m->w_vae, 0, &m->vae);
    if (st != DF_OK) {
        // the weight tables borrow f: free them before closing it
        df_clip_destroy(m->te1);
        df_clip_destroy(m->te2);
        df_vae_destroy(m->vae);
        m->te1 = m->te2 = NULL;
        m->vae = NULL;
        df_weights_destroy(m->w_te1);
        df_weights_destroy(m->w_te2);
        df_weights_destroy(m->w_vae);
        m->w_te1 = m->w_te2 = m->w_vae = NULL;
        df_st_close(f);
        return st;
    }
    // The component tables point into f's mapping: the model keeps f open (the UNet maps the
    // file once more through df_unet_load).
    m->single = f;

    // Optional LDM yaml next to the file (x.safetensors -> x.yaml) for the UNet head count.
    char yaml[4200];
    snprintf(yaml, sizeof yaml, "%s", file);
    char *dot = strrchr(yaml, '.');
    char *slash = strrchr(yaml, '/');
    if (dot && (!slash || dot > slash)) strcpy(dot, ".yaml");
    else strncat(yaml, ".yaml", sizeof yaml - strlen(yaml) - 1);
    DF_TRY(df_unet_load(file, is_file(yaml) ? yaml : NULL, &m->unet));

    DF_TRY(load_tokenizer(m, NULL, NULL, -1, &m->tok1));
    if (sdxl) DF_TRY(load_tokenizer(m, NULL, NULL, DF_TOK_PAD_SDXL2, &m->tok2));
    m->sched_cfg = df_sched_config_default_sdxl(); // the SD 1.x config has the same numbers
    m->sched_cfg.skip_prk_steps = 1;
    m->sched_kind = sdxl ? DF_SCHED_EULER : DF_SCHED_PNDM;
    return DF_OK;
}

// Cross-checks the components: text widths against the UNet's cross-attention / added
// embedding, latent channels.
static df_status check_components(const df_model *m) {
    const df_unet_config *u = df_unet_get_config(m->unet);
    const df_clip_config *c1 = df_clip_get_config(m->te1);
    const df_vae_config *v = df_vae_get_config(m->vae);
    int D = c1->hidden;
    if (m->arch == DF_ARCH_SDXL) {
        const df_clip_config *c2 = df_clip_get_config(m->te2);
        D += c2->hidden;
        DF_FAIL_IF(!u->addition_embed, DF_ERR_FORMAT,
                   "%s: SDXL pipeline but the UNet has no text_time added embedding", m->path);
        DF_FAIL_IF(c2->projection_dim != u->text_embeds_dim, DF_ERR_FORMAT,
                   "%s: text_encoder_2 projection_dim %d != UNet text_embeds width %d", m->path,
                   c2->projection_dim, u->text_embeds_dim);
        DF_FAIL_IF(u->n_time_ids != 6, DF_ERR_UNSUPPORTED,
                   "%s: UNet expects %d time ids (6 supported)", m->path, u->n_time_ids);
    } else {
        DF_FAIL_IF(u->addition_embed, DF_ERR_UNSUPPORTED,
                   "%s: SD 1.x pipeline with an SDXL-style UNet (addition_embed_type text_time)",
                   m->path);
    }
    DF_FAIL_IF(D != u->cross_attention_dim, DF_ERR_FORMAT,
               "%s: text encoder width %d != UNet cross_attention_dim %d", m->path, D,
               u->cross_attention_dim);
    DF_FAIL_IF(u->in_channels != v->latent_channels || u->out_channels != v->latent_channels,
               DF_ERR_FORMAT, "%s: UNet channels %d/%d vs VAE latent channels %d", m->path,
               u->in_channels, u->out_channels, v->latent_channels);
    return DF_OK;
}

df_load_params df_load_params_default(void) {
    df_load_params lp;
    memset(&lp, 0, sizeof lp);
    lp.weight_cache_mb = -1;
    lp.conv_algo = DF_CONV_ALGO_DEFAULT; // build option (CMake), 0: direct
    return lp;
}

df_status df_model_load(const char *path, df_model **out) {
    return df_model_load_ex(path, NULL, out);
}

df_status df_model_load_ex(const char *path, const df_load_params *lp, df_model **out) {
    DF_FAIL_IF(!out, DF_ERR_ARG, "NULL out");
    *out = NULL;
    DF_FAIL_IF(!path || !*path, DF_ERR_ARG, "no model path given");
    struct stat sb;
    DF_FAIL_IF(stat(path, &sb) != 0, DF_ERR_IO, "cannot open model %s: %s", path,
               strerror(errno));
    df_model *m = calloc(1, sizeof *m);
    DF_FAIL_IF(!m, DF_ERR_NOMEM, "model");
    snprintf(m->path, sizeof m->path, "%s", path);
    m->lp = lp ? *lp : df_load_params_default();
    // name: the base name without a trailing slash or the .safetensors extension
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/') tmp[--len] = 0;
    const char *base = strrchr(tmp, '/');
    base = base ? base + 1 : tmp;
    snprintf(m->name, sizeof m->name, "%s", base);
    char *ext = strstr(m->name, ".safetensors");
    if (ext && ext[12] == 0) *ext = 0;
    df_sched_config_init(&m->sched_cfg);

    df_status st = S_ISDIR(sb.st_mode) ? load_folder(m, path) : load_single(m, path);
    if (st == DF_OK && m->lp.weight_cache_mb >= 0)
        st = df_unet_set_weight_cache(m->unet, (size_t)m->lp.weight_cache_mb);
    if (st == DF_OK && m->lp.unet_profile) df_unet_set_profile(m->unet, 1);
    if (st == DF_OK) df_unet_set_conv_algo(m->unet, m->lp.conv_algo);
    m->lp.data_dir = NULL; // the caller's string
    if (st == DF_OK) st = check_components(m);
    if (st == DF_OK && m->sched_kind == DF_SCHED_NONE)
        m->sched_kind = m->arch == DF_ARCH_SDXL ? DF_SCHED_EULER : DF_SCHED_PNDM;
    if (st == DF_OK && m->sample_size <= 0) m->sample_size = m->arch == DF_ARCH_SDXL ? 128 : 64;
    if (st != DF_OK) {
        df_model_free(m);
        return st;
    }
    *out = m;
    return DF_OK;
}

void df_model_free(df_model *m) {
    if (!m) return;
    df_unet_destroy(m->unet);
    df_vae_destroy(m->vae);
    df_clip_destroy(m->te1);
    df_clip_destroy(m->te2);
    df_weights_destroy(m->w_te1);
    df_weights_destroy(m->w_te2);
    df_weights_destroy(m->w_vae);
    df_st_close(m->single);
    df_tokenizer_destroy(m->tok1);
    df_tokenizer_destroy(m->tok2);
    free(m);
}

df_arch df_model_arch(const df_model *m) { return m ? m->arch : DF_ARCH_UNKNOWN; }

const char *df_model_name(const df_model *m) { return m ? m->name : ""; }

void df_model_defaults(const df_model *m, int *width, int *height, float *cfg_scale,
                       const char **sampler) {
    int f = m ? df_vae_scale_factor(m->vae) : 8;
    int s = m ? m->sample_size : 64;
    if (width) *width = s * f;
    if (height) *height = s * f;
    if (cfg_scale) *cfg_scale = (m && m->arch == DF_ARCH_SDXL) ? 5.0f : 7.5f;
    if (sampler) *sampler = df_sched_kind_name(m ? m->sched_kind : DF_SCHED_PNDM);
}

void df_model_describe(const df_model *m, char *buf, size_t cap) {
    if (!buf || cap == 0) return;
    if (!m) {
        snprintf(buf, cap, "(no model)");
        return;
    }
    char u[512];
    df_unet_config_describe(df_unet_get_config(m->unet), u, sizeof u);
    const df_clip_config *c1 = df_clip_get_config(m->te1);
    const df_clip_config *c2 = m->te2 ? df_clip_get_config(m->te2) : NULL;
    const df_vae_config *v = df_vae_get_config(m->vae);
    char te2[128] = "";
    if (c2)
        snprintf(te2, sizeof te2, " + %dx%d (proj %d)", c2->layers, c2->hidden,
                 c2->projection_dim);
    snprintf(buf, cap,
             "%s (%s, %s): %s; text %dx%d%s; vae %d levels x%d scale %.5g; "
             "scheduler %s",
             m->name, df_arch_name(m->arch), m->single_file ? "single file" : "diffusers",
             u, c1->layers, c1->hidden, te2, v->levels, df_vae_scale_factor(m->vae),
             (double)v->scaling_factor, df_sched_kind_name(m->sched_kind));
}
