// AutoencoderKL decoder / encoder and tiled decoding (see vae.h; spec sdxl.md §4).
//
// Execution model (one image at a time; the batch is a loop):
//   Two activation buffers A and B of `max_t` floats ping-pong: every layer reads the current
//   buffer and writes the other, except the mid attention, which adds into the current one.
//   GroupNorm(+SiLU)-then-3x3-conv is done in row bands: statistics over the whole tensor first
//   (df_group_norm_stats, double sums), then per band the normalised rows incl. one halo row
//   above/below go into a small scratch (s1) and df_conv2d consumes them with explicit halos.
//   A resnet writes its conv1 output into the other buffer, and its final output into the same
//   buffer band by band, one band late (a band's conv1 rows are overwritten only after the next
//   band has copied its halo row), so it needs no third full-size buffer.
#include "model/vae.h"

#include "runtime/bands.h"

#include "core/textfile.h"
#include "io/json_util.h"
#include "kernels/gemm_bf16.h"
#include "kernels/kernels.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VAE_EPS 1e-6f                   // GroupNorm eps of the whole AutoencoderKL
#define VAE_INT_MAX 1000000             // sanity bound of the integer config fields
#define VAE_BAND_FLOATS ((size_t)4 << 20) // band scratch budget per scratch buffer (16 MB)

// ---------------------------------------------------------------------------------------------
// Configuration

static void config_defaults(df_vae_config *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = 3;
    c->out_channels = 3;
    c->latent_channels = 4;
    c->levels = 1;
    c->block_out[0] = 64;
    c->layers_per_block = 1;
    c->groups = 32;
    c->sample_size = 32;
    c->scaling_factor = 0.18215f;
    c->force_upcast = 1;
    c->mid_attention = 1;
    c->use_quant_conv = 1;
    c->use_post_quant_conv = 1;
}

void df_vae_config_sd(df_vae_config *cfg, int sdxl) {
    config_defaults(cfg);
    cfg->levels = 4;
    cfg->block_out[0] = 128;
    cfg->block_out[1] = 256;
    cfg->block_out[2] = 512;
    cfg->block_out[3] = 512;
    cfg->layers_per_block = 2;
    cfg->sample_size = sdxl ? 1024 : 512;
    cfg->scaling_factor = sdxl ? 0.13025f : 0.18215f;
}

// Every entry of the string array KEY (if present) must equal WANT.
static df_status json_types(const cJSON *root, const char *key, const char *want,
                            const char *label, int levels) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it) return DF_OK;
    DF_FAIL_IF(!cJSON_IsArray(it) || cJSON_GetArraySize(it) != levels, DF_ERR_FORMAT,
               "%s: \"%s\" must be an array of %d block types", label, key, levels);
    const cJSON *e;
    cJSON_ArrayForEach(e, it) {
        DF_FAIL_IF(!cJSON_IsString(e) || strcmp(e->valuestring, want) != 0, DF_ERR_UNSUPPORTED,
                   "%s: %s entry %s is not supported (only %s)", label, key,
                   cJSON_IsString(e) ? e->valuestring : "(not a string)", want);
    }
    return DF_OK;
}

static df_status parse_root(const cJSON *root, const char *label, df_vae_config *c) {
    DF_TRY(df_json_int(root, label, "in_channels", 1, VAE_INT_MAX, &c->in_channels));
    DF_TRY(df_json_int(root, label, "out_channels", 1, VAE_INT_MAX, &c->out_channels));
    DF_TRY(df_json_int(root, label, "latent_channels", 1, VAE_INT_MAX, &c->latent_channels));
    DF_TRY(df_json_int(root, label, "layers_per_block", 1, VAE_INT_MAX, &c->layers_per_block));
    DF_TRY(df_json_int(root, label, "norm_num_groups", 1, VAE_INT_MAX, &c->groups));
    DF_TRY(df_json_int(root, label, "sample_size", 1, VAE_INT_MAX, &c->sample_size));
    DF_TRY(df_json_bool(root, label, "force_upcast", &c->force_upcast));
    DF_TRY(df_json_bool(root, label, "mid_block_add_attention", &c->mid_attention));
    DF_TRY(df_json_bool(root, label, "use_quant_conv", &c->use_quant_conv));
    DF_TRY(df_json_bool(root, label, "use_post_quant_conv", &c->use_post_quant_conv));
    const cJSON *bo = cJSON_GetObjectItemCaseSensitive(root, "block_out_channels");
    if (bo) {
        int n = cJSON_IsArray(bo) ? cJSON_GetArraySize(bo) : -1;
        DF_FAIL_IF(n < 1 || n > DF_VAE_MAX_LEVELS, DF_ERR_FORMAT,
                   "%s: block_out_channels must be an array of 1..%d integers", label,
                   DF_VAE_MAX_LEVELS);
        c->levels = n;
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(bo, i);
            DF_FAIL_IF(!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 65536 ||
                           e->valuedouble != floor(e->valuedouble),
                       DF_ERR_FORMAT, "%s: block_out_channels[%d] is not a positive integer",
                       label, i);
            c->block_out[i] = (int)e->valuedouble;
        }
    }
    DF_TRY(json_types(root, "down_block_types", "DownEncoderBlock2D", label, c->levels));
    DF_TRY(json_types(root, "up_block_types", "UpDecoderBlock2D", label, c->levels));
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "act_fn");
    DF_FAIL_IF(act && (!cJSON_IsString(act) || strcmp(act->valuestring, "silu") != 0),
               DF_ERR_UNSUPPORTED, "%s: act_fn %s is not supported (only silu)", label,
               cJSON_IsString(act) ? act->valuestring : "(not a string)");
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(root, "scaling_factor");
    if (sf) {
        DF_FAIL_IF(!cJSON_IsNumber(sf) || !(sf->valuedouble > 0), DF_ERR_FORMAT,
                   "%s: scaling_factor must be a positive number", label);
        c->scaling_factor = (float)sf->valuedouble;
    }
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(root, "shift_factor");
    DF_FAIL_IF(sh && !cJSON_IsNull(sh) && !(cJSON_IsNumber(sh) && sh->valuedouble == 0),
               DF_ERR_UNSUPPORTED, "%s: shift_factor is not supported", label);
    for (int i = 0; i < c->levels; i++)
        DF_FAIL_IF(c->block_out[i] % c->groups != 0, DF_ERR_FORMAT,
                   "%s: block_out_channels[%d] = %d is not divisible by norm_num_groups %d",
                   label, i, c->block_out[i], c->groups);
    return DF_OK;
}

df_status df_vae_config_parse(const char *json, const char *label, df_vae_config *cfg) {
    DF_FAIL_IF(!json || !cfg, DF_ERR_ARG, "NULL argument");
    df_vae_config c;
    config_defaults(&c);
    cJSON *root;
    DF_TRY(df_json_parse_object(json, label, &root));
    df_status st = parse_root(root, label, &c);
    cJSON_Delete(root);
    if (st == DF_OK) *cfg = c;
    return st;
}

df_status df_vae_config_load(const char *path, df_vae_config *cfg) {
    DF_FAIL_IF(!path || !cfg, DF_ERR_ARG, "NULL argument");
    char *buf;
    DF_TRY(df_read_text_file(path, (size_t)16 << 20, 0, &buf, NULL));
    df_status st = df_vae_config_parse(buf, path, cfg);
    free(buf);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Model structure (weight views, shape-checked at creation)

typedef struct vae_conv {
    const df_st_tensor *w, *b;
    int cin, cout, k;
} vae_conv;

typedef struct vae_norm {
    const df_st_tensor *w, *b;
    int C;
} vae_norm;

typedef struct vae_resnet {
    int cin, cout;
    vae_norm n1, n2;
    vae_conv c1, c2, sc; // sc.w NULL when cin == cout
} vae_resnet;

typedef struct vae_attn {
    int C;
    vae_norm gn;
    const df_st_tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
} vae_attn;

typedef struct vae_mid {
    vae_resnet r0, r1;
    vae_attn attn;
    int has_attn;
} vae_mid;

typedef struct vae_decoder {
    vae_conv post_quant; // w NULL without post_quant_conv
    vae_conv conv_in;
    vae_mid mid;
    vae_resnet *res;                      // [levels][L+1]
    vae_conv up[DF_VAE_MAX_LEVELS];       // upsampler conv of up block i (i < levels-1)
    vae_norm norm_out;
    vae_conv conv_out;
} vae_decoder;

typedef struct vae_encoder {
    vae_conv conv_in;
    vae_resnet *res;                      // [levels][L]
    vae_conv down[DF_VAE_MAX_LEVELS];     // downsampler conv of down block i (i < levels-1)
    vae_mid mid;
    vae_norm norm_out;
    vae_conv conv_out;
    vae_conv quant; // w NULL without quant_conv
} vae_encoder;

struct df_vae {
    df_vae_config cfg;
    int bf16; // df_vae_set_compute
    size_t band_floats; // 0 = VAE_BAND_FLOATS
    df_weights *w;
    int owns_weights;
    vae_decoder dec;
    int has_encoder;
    vae_encoder enc;
};

static df_status bind_conv(df_weights *w, const char *prefix, int cin, int cout, int k,
                           vae_conv *c) {
    char n[256];
    c->cin = cin, c->cout = cout, c->k = k;
    snprintf(n, sizeof n, "%s.weight", prefix);
    const int64_t ws[4] = {cout, cin, k, k}, bs[1] = {cout};
    DF_TRY(df_weights_get(w, n, 4, ws, &c->w));
    snprintf(n, sizeof n, "%s.bias", prefix);
    return df_weights_get(w, n, 1, bs, &c->b);
}

static df_status bind_norm(df_weights *w, const char *prefix, int C, vae_norm *g) {
    char n[256];
    const int64_t s[1] = {C};
    g->C = C;
    snprintf(n, sizeof n, "%s.weight", prefix);
    DF_TRY(df_weights_get(w, n, 1, s, &g->w));
    snprintf(n, sizeof n, "%s.bias", prefix);
    return df_weights_get(w, n, 1, s, &g->b);
}

static df_status bind_resnet(df_weights *w, const char *prefix, int cin, int cout,
                             vae_resnet *r) {
    char n[256];
    r->cin = cin, r->cout = cout;
    snprintf(n, sizeof n, "%s.norm1", prefix);
    DF_TRY(bind_norm(w, n, cin, &r->n1));
    snprintf(n, sizeof n, "%s.conv1", prefix);
    DF_TRY(bind_conv(w, n, cin, cout, 3, &r->c1));
    snprintf(n, sizeof n, "%s.norm2", prefix);
    DF_TRY(bind_norm(w, n, cout, &r->n2));
    snprintf(n, sizeof n, "%s.conv2", prefix);
    DF_TRY(bind_conv(w, n, cout, cout, 3, &r->c2));
    memset(&r->sc, 0, sizeof r->sc);
    if (cin != cout) {
        snprintf(n, sizeof n, "%s.conv_shortcut", prefix);
        DF_TRY(bind_conv(w, n, cin, cout, 1, &r->sc));
    }
    return DF_OK;
}

// One attention projection: `name` (to_q, ...) or its deprecated alias; [C][C] (Linear) or
// [C][C][1][1] (LDM 1x1 conv: df_weights_get ignores trailing 1s).
static df_status bind_proj(df_weights *w, const char *prefix, const char *name, const char *old,
                           int C, const df_st_tensor **wt, const df_st_tensor **bt) {
    char n[256];
    const int64_t ws[2] = {C, C}, bs[1] = {C};
    snprintf(n, sizeof n, "%s.%s.weight", prefix, old);
    const char *use = df_weights_find(w, n) ? old : name;
    snprintf(n, sizeof n, "%s.%s.weight", prefix, use);
    DF_TRY(df_weights_get(w, n, 2, ws, wt));
    snprintf(n, sizeof n, "%s.%s.bias", prefix, use);
    return df_weights_get(w, n, 1, bs, bt);
}

static df_status bind_mid(df_weights *w, const char *part, int C, int with_attn, vae_mid *m) {
    char p[128], n[192];
    snprintf(p, sizeof p, "%s.mid_block", part);
    snprintf(n, sizeof n, "%s.resnets.0", p);
    DF_TRY(bind_resnet(w, n, C, C, &m->r0));
    snprintf(n, sizeof n, "%s.resnets.1", p);
    DF_TRY(bind_resnet(w, n, C, C, &m->r1));
    m->has_attn = with_attn;
    if (!with_attn) return DF_OK;
    vae_attn *a = &m->attn;
    a->C = C;
    snprintf(n, sizeof n, "%s.attentions.0", p);
    char g[224];
    snprintf(g, sizeof g, "%s.group_norm", n);
    DF_TRY(bind_norm(w, g, C, &a->gn));
    DF_TRY(bind_proj(w, n, "to_q", "query", C, &a->q_w, &a->q_b));
    DF_TRY(bind_proj(w, n, "to_k", "key", C, &a->k_w, &a->k_b));
    DF_TRY(bind_proj(w, n, "to_v", "value", C, &a->v_w, &a->v_b));
    DF_TRY(bind_proj(w, n, "to_out.0", "proj_attn", C, &a->o_w, &a->o_b));
    return DF_OK;
}

// Block i of PREFIX ("decoder.up_blocks" / "encoder.down_blocks"): L resnets (the first cin ->
// out) and, with `resample`, the 3x3 conv of its SAMPLER ("upsamplers" / "downsamplers").
static df_status bind_block(df_weights *w, const char *prefix, const char *sampler, int i, int L,
                            int cin, int out, int resample, vae_resnet *res, vae_conv *conv) {
    char p[128];
    for (int j = 0; j < L; j++) {
        snprintf(p, sizeof p, "%s.%d.resnets.%d", prefix, i, j);
        DF_TRY(bind_resnet(w, p, j == 0 ? cin : out, out, &res[j]));
    }
    if (!resample) return DF_OK;
    snprintf(p, sizeof p, "%s.%d.%s.0.conv", prefix, i, sampler);
    return bind_conv(w, p, out, out, 3, conv);
}

static df_status bind_decoder(df_vae *m) {
    const df_vae_config *c = &m->cfg;
    vae_decoder *d = &m->dec;
    const int n = c->levels, L = c->layers_per_block + 1, top = c->block_out[n - 1];
    if (c->use_post_quant_conv)
        DF_TRY(bind_conv(m->w, "post_quant_conv", c->latent_channels, c->latent_channels, 1,
                         &d->post_quant));
    DF_TRY(bind_conv(m->w, "decoder.conv_in", c->latent_channels, top, 3, &d->conv_in));
    DF_TRY(bind_mid(m->w, "decoder", top, c->mid_attention, &d->mid));
    d->res = calloc((size_t)n * L, sizeof *d->res);
    DF_FAIL_IF(!d->res, DF_ERR_NOMEM, "VAE decoder blocks");
    for (int i = 0; i < n; i++) {
        const int cin = i ? c->block_out[n - i] : top, out = c->block_out[n - 1 - i];
        DF_TRY(bind_block(m->w, "decoder.up_blocks", "upsamplers", i, L, cin, out, i < n - 1,
                          &d->res[i * L], &d->up[i]));
    }
    DF_TRY(bind_norm(m->w, "decoder.conv_norm_out", c->block_out[0], &d->norm_out));
    return bind_conv(m->w, "decoder.conv_out", c->block_out[0], c->out_channels, 3,
                     &d->conv_out);
}

static df_status bind_encoder(df_vae *m) {
    const df_vae_config *c = &m->cfg;
    vae_encoder *e = &m->enc;
    const int n = c->levels, L = c->layers_per_block, top = c->block_out[n - 1];
    DF_TRY(bind_conv(m->w, "encoder.conv_in", c->in_channels, c->block_out[0], 3, &e->conv_in));
    e->res = calloc((size_t)n * L, sizeof *e->res);
    DF_FAIL_IF(!e->res, DF_ERR_NOMEM, "VAE encoder blocks");
    for (int i = 0; i < n; i++) {
        const int cin = c->block_out[i ? i - 1 : 0], out = c->block_out[i];
        DF_TRY(bind_block(m->w, "encoder.down_blocks", "downsamplers", i, L, cin, out, i < n - 1,
                          &e->res[i * L], &e->down[i]));
    }
    DF_TRY(bind_mid(m->w, "encoder", top, c->mid_attention, &e->mid));
    DF_TRY(bind_norm(m->w, "encoder.conv_norm_out", top, &e->norm_out));
    DF_TRY(bind_conv(m->w, "encoder.conv_out", top, 2 * c->latent_channels, 3, &e->conv_out));
    if (c->use_quant_conv)
        DF_TRY(bind_conv(m->w, "quant_conv", 2 * c->latent_channels, 2 * c->latent_channels, 1,
                         &e->quant));
    return DF_OK;
}

df_status df_vae_create(const df_vae_config *cfg, df_weights *w, int with_encoder,
                        df_vae **out) {
    DF_FAIL_IF(!cfg || !w || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    DF_FAIL_IF(cfg->levels < 1 || cfg->levels > DF_VAE_MAX_LEVELS || cfg->groups < 1 ||
                   cfg->in_channels < 1 || cfg->out_channels < 1 || cfg->latent_channels < 1 ||
                   cfg->layers_per_block < 1 || cfg->sample_size < 1,
               DF_ERR_ARG, "invalid VAE config");
    for (int i = 0; i < cfg->levels; i++)
        DF_FAIL_IF(cfg->block_out[i] < 1 || cfg->block_out[i] % cfg->groups != 0, DF_ERR_ARG,
                   "block_out_channels[%d] = %d not a multiple of norm_num_groups %d", i,
                   cfg->block_out[i], cfg->groups);
    df_vae *m = calloc(1, sizeof *m);
    DF_FAIL_IF(!m, DF_ERR_NOMEM, "VAE");
    m->cfg = *cfg;
    m->w = w;
    df_status st = bind_decoder(m);
    if (st == DF_OK && with_encoder) {
        m->has_encoder = 1;
        st = bind_encoder(m);
    }
    if (st != DF_OK) {
        df_vae_destroy(m);
        return st;
    }
    *out = m;
    return DF_OK;
}

df_status df_vae_load(const char *model_dir, const char *component, int with_encoder,
                      df_vae **out) {
    DF_FAIL_IF(!model_dir || !component || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s/config.json", model_dir, component);
    DF_FAIL_IF(n < 0 || (size_t)n >= sizeof path, DF_ERR_ARG, "path too long");
    df_vae_config cfg;
    DF_TRY(df_vae_config_load(path, &cfg));
    df_weights *w = NULL;
    DF_TRY(df_weights_open_dir(model_dir, component, &w));
    df_vae *m = NULL;
    df_status st = df_vae_create(&cfg, w, with_encoder, &m);
    if (st != DF_OK) {
        df_weights_destroy(w);
        return st;
    }
    m->owns_weights = 1;
    *out = m;
    return DF_OK;
}

void df_vae_destroy(df_vae *m) {
    if (!m) return;
    if (m->owns_weights) df_weights_destroy(m->w);
    free(m->dec.res);
    free(m->enc.res);
    free(m);
}

const df_vae_config *df_vae_get_config(const df_vae *m) {
    return m ? &m->cfg : NULL;
}

int df_vae_scale_factor(const df_vae *m) {
    return 1 << (m->cfg.levels - 1);
}

// ---------------------------------------------------------------------------------------------
// Runtime scratch of one decode / encode (sized for the largest image it will see)

typedef struct vae_rt {
    const df_vae *m;
    float *A, *B;       // [max_t] ping-pong activations (or two ends of the arena)
    size_t max_t;
    // Decoder: A and B live at the two ends of one arena of max_t floats (place_B); the arena
    // is sized by simulating the layers (dec_arena), so the input and output of every layer fit
    // side by side. a_low: A is at the low end; a_floats / b_floats: the tensors' sizes.
    float *arena;
    int a_low;
    size_t a_floats, b_floats;
    float *s1, *s2, *s3; // [s_floats] band scratch (normalised input rows / conv out / shortcut)
    size_t s_floats;
    float *wpack, *wsc; // packed conv weights (3x3 / the 1x1 shortcut)
    // --compute bf16 (df_vae_set_compute): the 3x3 weight in wpack also packed as bf16 (wb_ok)
    uint16_t *wbf;
    df_bf16_mat wb;
    int wb_ok;
    float *bias, *bsc;  // [max channels]
    float *gamma, *beta, *mean, *rstd;
    double *stats;      // [2 * groups]
    // band decode (df_vae_decode_band); ops NULL otherwise
    const df_vae_band_ops *ops;
    int has_top, has_bot; // neighbour band above / below exists
    float *htop, *hbot;   // [halo_floats] raw halo rows received from the neighbours
    size_t halo_floats;
    float *kv;            // [2][Tg][C] gathered K and V of the mid attention
    int Hg;               // global rows of the current level
    df_status st;         // first communication failure (later communication is skipped)
    df_vae_dump_fn dump;
    void *dump_user;
    int b;
} vae_rt;

// Largest channel count anywhere in the model.
static int max_channels(const df_vae_config *c) {
    int mx = c->in_channels > c->out_channels ? c->in_channels : c->out_channels;
    if (2 * c->latent_channels > mx) mx = 2 * c->latent_channels;
    for (int i = 0; i < c->levels; i++)
        if (c->block_out[i] > mx) mx = c->block_out[i];
    return mx;
}

// Arena (floats) of the decoder with A and B at its two ends: max over the layers of input +
// output (the attention: x + its 4 [T][C] work tensors). h_in: rows of the post_quant_conv
// input (band decode: the band plus its halo rows), h x w: the decoder's latent (band) size.
static size_t dec_arena(const df_vae_config *c, int h_in, int h, int w) {
    const int n = c->levels, top = c->block_out[n - 1];
    const size_t hw = (size_t)h * w;
    size_t s = (size_t)h_in * w * c->latent_channels + hw * top; // post_quant -> conv_in
    if (2 * hw * top > s) s = 2 * hw * top;                      // mid resnets
    if (c->mid_attention && 5 * hw * top > s) s = 5 * hw * top;
    int prev = top;
    size_t px = hw;
    for (int i = 0; i < n; i++) {
        const int out = c->block_out[n - 1 - i];
        if (px * (size_t)(prev + out) > s) s = px * (size_t)(prev + out); // resnets (cin prev)
        if (px * (size_t)(2 * out) > s) s = px * (size_t)(2 * out);
        if (i < n - 1) {
            if (5 * px * (size_t)out > s) s = 5 * px * (size_t)out; // upsampler: x, 4x out
            px *= 4;
        }
        prev = out;
    }
    return s;
}

static size_t enc_max_t(const df_vae_config *c, int H, int W) {
    const int n = c->levels;
    size_t px = (size_t)H * W;
    size_t mx = px * (size_t)c->block_out[0];
    int prev = c->block_out[0];
    for (int i = 0; i < n; i++) {
        const int out = c->block_out[i];
        const int cmax = prev > out ? prev : out;
        if (px * cmax > mx) mx = px * cmax;
        if (i < n - 1) px = (size_t)((H >> (i + 1))) * (size_t)(W >> (i + 1));
        prev = out;
    }
    const size_t lo = (size_t)(H >> (n - 1)) * (size_t)(W >> (n - 1));
    if (4 * lo * (size_t)c->block_out[n - 1] > mx) mx = 4 * lo * (size_t)c->block_out[n - 1];
    return mx;
}

static size_t band_floats(const df_vae *m, int wmax) {
    const size_t need = 3 * (size_t)wmax * (size_t)max_channels(&m->cfg);
    const size_t want = m->band_floats ? m->band_floats : VAE_BAND_FLOATS;
    return need > want ? need : want;
}

static size_t rt_bytes(const df_vae *m, size_t max_t, int wmax, int arena) {
    const df_vae_config *c = &m->cfg;
    const size_t C = (size_t)max_channels(c);
    return sizeof(float) * ((arena ? 1 : 2) * max_t + 3 * band_floats(m, wmax) + 10 * C * C +
                            6 * C) +
           2 * sizeof(double) * (size_t)c->groups;
}

int df_vae_set_compute(df_vae *m, int bf16) {
    m->bf16 = bf16 && df_bf16_available();
    return m->bf16;
}

void df_vae_set_band_floats(df_vae *m, size_t floats) {
    if (m) m->band_floats = floats;
}

static void rt_free(vae_rt *rt) {
    if (rt->arena) {
        df_free(rt->arena);
    } else {
        df_free(rt->A);
        df_free(rt->B);
    }
    df_free(rt->s1);
    df_free(rt->s2);
    df_free(rt->s3);
    df_free(rt->wpack);
    df_free(rt->wbf);
    df_free(rt->wsc);
    df_free(rt->bias);
    df_free(rt->bsc);
    df_free(rt->gamma);
    df_free(rt->beta);
    df_free(rt->mean);
    df_free(rt->rstd);
    df_free(rt->stats);
    df_free(rt->htop);
    df_free(rt->hbot);
    df_free(rt->kv);
    memset(rt, 0, sizeof *rt);
}

// arena != 0: one arena of max_t floats for A and B (the decoder; see place_B), else two
// buffers of max_t floats.
static df_status rt_alloc(vae_rt *rt, const df_vae *m, size_t max_t, int wmax, int arena) {
    memset(rt, 0, sizeof *rt);
    rt->m = m;
    const size_t C = (size_t)max_channels(&m->cfg);
    rt->max_t = max_t;
    rt->s_floats = band_floats(m, wmax);
    if (arena) {
        rt->arena = df_malloc(max_t * sizeof(float));
        rt->A = rt->B = rt->arena;
        rt->a_low = 1;
    } else {
        rt->A = df_malloc(max_t * sizeof(float));
        rt->B = df_malloc(max_t * sizeof(float));
    }
    rt->s1 = df_malloc(rt->s_floats * sizeof(float));
    rt->s2 = df_malloc(rt->s_floats * sizeof(float));
    rt->s3 = df_malloc(rt->s_floats * sizeof(float));
    rt->wpack = df_malloc(9 * C * C * sizeof(float));
    if (m->bf16) rt->wbf = df_malloc(df_bf16_mat_elems(9 * (int)C, (int)C) * sizeof(uint16_t));
    rt->wsc = df_malloc(C * C * sizeof(float));
    rt->bias = df_malloc(C * sizeof(float));
    rt->bsc = df_malloc(C * sizeof(float));
    rt->gamma = df_malloc(C * sizeof(float));
    rt->beta = df_malloc(C * sizeof(float));
    rt->mean = df_malloc((size_t)m->cfg.groups * sizeof(float));
    rt->rstd = df_malloc((size_t)m->cfg.groups * sizeof(float));
    rt->stats = df_malloc(2 * (size_t)m->cfg.groups * sizeof(double));
    if (!rt->A || !rt->B || !rt->s1 || !rt->s2 || !rt->s3 || !rt->wpack || !rt->wsc ||
        (m->bf16 && !rt->wbf) ||
        !rt->bias || !rt->bsc || !rt->gamma || !rt->beta || !rt->mean || !rt->rstd ||
        !rt->stats) {
        rt_free(rt);
        return DF_ERROR(DF_ERR_NOMEM, "VAE activations: %.1f MiB",
                        (double)rt_bytes(m, max_t, wmax, arena) / (1 << 20));
    }
    return DF_OK;
}

// Arena: points rt->B at `floats` floats at the end opposite to A (whose tensor has a_floats).
static void place_B(vae_rt *rt, size_t floats) {
    if (!rt->arena) return;
    DF_ASSERT(rt->a_floats + floats <= rt->max_t);
    rt->B = rt->a_low ? rt->arena + (rt->max_t - floats) : rt->arena;
    rt->b_floats = floats;
}

static void swap_buffers(vae_rt *rt) {
    float *t = rt->A;
    rt->A = rt->B;
    rt->B = t;
    rt->a_low = !rt->a_low;
    size_t f = rt->a_floats;
    rt->a_floats = rt->b_floats;
    rt->b_floats = f;
}

static void dump(vae_rt *rt, const char *name, const float *x, int H, int W, int C) {
    if (rt->dump) rt->dump(rt->dump_user, name, rt->b, x, H, W, C);
}

// ---------------------------------------------------------------------------------------------
// Layers

static void cvt(float *dst, const df_st_tensor *t) {
    df_convert_to_f32(dst, t->data, t->dtype, t->numel);
}

static void pack_conv(vae_rt *rt, const vae_conv *c, float *wdst, float *bdst) {
    df_conv_weight_pack(wdst, c->w->data, c->w->dtype, c->cout, c->cin, c->k);
    cvt(bdst, c->b);
    if (wdst == rt->wpack) {
        rt->wb_ok = rt->wbf && c->k == 3 && c->cin % 2 == 0 && c->cout >= 16;
        if (rt->wb_ok) df_bf16_pack(rt->wbf, wdst, c->cout, 0, 9 * c->cin, c->cout, &rt->wb);
    }
}

// df_conv2d, or with --compute bf16 df_conv2d_bf16 when w is the bf16-packed 3x3 weight.
static void vconv(vae_rt *rt, float *y, const float *x, const float *top, const float *bot,
                  const float *w, const float *bias, int B, int H, int W, int cin, int cout, int k,
                  int stride) {
    if (rt->wb_ok && w == rt->wpack && k == 3 && rt->wb.K == 9 * cin && rt->wb.N == cout)
        df_conv2d_bf16(y, x, top, bot, &rt->wb, bias, B, H, W, cin, cout, stride);
    else
        df_conv2d(y, x, top, bot, w, bias, B, H, W, cin, cout, k, stride);
}

// Whole-tensor conv (no normalisation in front): x [H][W][cin] -> y [H][W][cout].
static void conv_full(vae_rt *rt, const vae_conv *c, const float *x, float *y, int H, int W) {
    pack_conv(rt, c, rt->wpack, rt->bias);
    vconv(rt, y, x, NULL, NULL, rt->wpack, rt->bias, 1, H, W, c->cin, c->cout, c->k, 1);
}

// GroupNorm statistics of the whole x [H][W][C] -> rt->mean/rstd; affine parameters ->
// gamma/beta. Band decode: the double sums of every band are added up (global statistics over
// rt->Hg rows).
static void gn_prepare(vae_rt *rt, const vae_norm *g, const float *x, int H, int W) {
    const int G = rt->m->cfg.groups, C = g->C;
    df_group_norm_stats(rt->stats, x, H * W, C, G);
    double T = (double)H * W;
    if (rt->ops) {
        if (rt->st == DF_OK) rt->st = rt->ops->allreduce_f64(rt->ops->user, rt->stats, 2 * G);
        T = (double)rt->Hg * W;
    }
    df_group_norm_finalize(rt->mean, rt->rstd, rt->stats, G, T * (C / G), VAE_EPS);
    cvt(rt->gamma, g->w);
    cvt(rt->beta, g->b);
}

// Band decode: the neighbours' boundary rows of x [H][W][C] -> rt->htop / rt->hbot.
static void exchange(vae_rt *rt, const float *x, int H, int W, int C) {
    if (!rt->ops || rt->st != DF_OK) return;
    const size_t row = (size_t)W * C;
    DF_ASSERT(row <= rt->halo_floats);
    rt->st = rt->ops->halo(rt->ops->user, x, x + (size_t)(H - 1) * row,
                           rt->has_top ? rt->htop : NULL, rt->has_bot ? rt->hbot : NULL, row);
}

// Rows per band so that (rows + 2) input rows of cin and rows output rows of cout fit s_floats.
static int band_rows(const vae_rt *rt, int W, int cin, int cout) {
    size_t a = rt->s_floats / ((size_t)W * cin);
    size_t b = rt->s_floats / ((size_t)W * cout);
    size_t r = a >= 3 ? a - 2 : 1;
    if (b < r) r = b;
    return r < 1 ? 1 : (int)(r > 1 << 20 ? 1 << 20 : r);
}

// GroupNorm + SiLU (prepared) of x rows [r0-1, r1+1) ∩ [0, H) into rt->s1, laid out so that
// row r0 is at s1 + W*C; sets the conv halo pointers (NULL at the image border). Band decode:
// row -1 / H are the neighbours' rows (rt->htop / rt->hbot, exchanged before).
static const float *gn_band(vae_rt *rt, const float *x, int H, int W, int C, int r0, int r1,
                            const float **top, const float **bot) {
    const size_t row = (size_t)W * C;
    const int G = rt->m->cfg.groups;
    const int a = r0 > 0 ? r0 - 1 : 0, b = r1 < H ? r1 + 1 : H;
    float *dst = rt->s1 + (size_t)(a - (r0 - 1)) * row;
    df_group_norm_apply(dst, x + (size_t)a * row, rt->mean, rt->rstd, rt->gamma, rt->beta,
                        (b - a) * W, C, G, 1);
    const int ht = r0 > 0 || rt->has_top, hb = r1 < H || rt->has_bot;
    if (r0 == 0 && ht)
        df_group_norm_apply(rt->s1, rt->htop, rt->mean, rt->rstd, rt->gamma, rt->beta, W, C, G,
                            1);
    if (r1 == H && hb)
        df_group_norm_apply(rt->s1 + (size_t)(1 + r1 - r0) * row, rt->hbot, rt->mean, rt->rstd,
                            rt->gamma, rt->beta, W, C, G, 1);
    *top = ht ? rt->s1 : NULL;
    *bot = hb ? rt->s1 + (size_t)(1 + r1 - r0) * row : NULL;
    return rt->s1 + row;
}

// ResnetBlock2D (no time embedding, output_scale_factor 1):
//   out = shortcut(x) + conv2(SiLU(GN2(conv1(SiLU(GN1(x))))))
// x in rt->A [H][W][cin]; result in rt->B [H][W][cout] (buffers swapped on return).
static void resnet(vae_rt *rt, const vae_resnet *r, int H, int W) {
    place_B(rt, (size_t)H * W * r->cout);
    const float *x = rt->A;
    float *y = rt->B;
    const int cin = r->cin, cout = r->cout;
    const int band = band_rows(rt, W, cin > cout ? cin : cout, cout);
    const float *top, *bot, *mid;

    // conv1(SiLU(GN1(x))) -> y
    gn_prepare(rt, &r->n1, x, H, W);
    exchange(rt, x, H, W, cin);
    pack_conv(rt, &r->c1, rt->wpack, rt->bias);
    for (int r0 = 0; r0 < H; r0 += band) {
        const int r1 = r0 + band < H ? r0 + band : H;
        mid = gn_band(rt, x, H, W, cin, r0, r1, &top, &bot);
        vconv(rt, y + (size_t)r0 * W * cout, mid, top, bot, rt->wpack, rt->bias, 1, r1 - r0, W,
                  cin, cout, 3, 1);
    }

    // conv2(SiLU(GN2(y))) + shortcut(x) -> y, each band written one band late
    gn_prepare(rt, &r->n2, y, H, W);
    exchange(rt, y, H, W, cout);
    pack_conv(rt, &r->c2, rt->wpack, rt->bias);
    if (r->sc.w) pack_conv(rt, &r->sc, rt->wsc, rt->bsc);
    int pend0 = -1, pend1 = -1; // band whose output waits in s2
    for (int r0 = 0; r0 < H; r0 += band) {
        const int r1 = r0 + band < H ? r0 + band : H;
        const size_t n = (size_t)(r1 - r0) * W;
        mid = gn_band(rt, y, H, W, cout, r0, r1, &top, &bot); // copies the halo rows it needs
        if (pend0 >= 0)
            memcpy(y + (size_t)pend0 * W * cout, rt->s2,
                   (size_t)(pend1 - pend0) * W * cout * sizeof(float));
        vconv(rt, rt->s2, mid, top, bot, rt->wpack, rt->bias, 1, r1 - r0, W, cout, cout, 3, 1);
        const float *xs = x + (size_t)r0 * W * cin;
        if (r->sc.w) {
            df_conv2d(rt->s3, xs, NULL, NULL, rt->wsc, rt->bsc, 1, r1 - r0, W, cin, cout, 1, 1);
            df_add(rt->s2, rt->s3, rt->s2, n * cout);
        } else {
            df_add(rt->s2, xs, rt->s2, n * cout);
        }
        pend0 = r0, pend1 = r1;
    }
    memcpy(y + (size_t)pend0 * W * cout, rt->s2,
           (size_t)(pend1 - pend0) * W * cout * sizeof(float));
    swap_buffers(rt);
}

// Attention block (one head over all H*W pixels): x += to_out(attn(to_q/k/v(GN(x)))), in place
// on rt->A; rt->B holds the normalised tokens and q, k, v ([T][C] each).
static void attention(vae_rt *rt, const vae_attn *a, int H, int W) {
    const int C = a->C;
    const size_t T = (size_t)H * W, TC = T * C;
    place_B(rt, 4 * TC);
    float *x = rt->A;
    float *nrm = rt->B, *q = rt->B + TC, *k = rt->B + 2 * TC, *v = rt->B + 3 * TC;
    gn_prepare(rt, &a->gn, x, H, W);
    df_group_norm_apply(nrm, x, rt->mean, rt->rstd, rt->gamma, rt->beta, (int)T, C,
                        rt->m->cfg.groups, 0);
    const df_st_tensor *pw[3] = {a->q_w, a->k_w, a->v_w}, *pb[3] = {a->q_b, a->k_b, a->v_b};
    float *dst[3] = {q, k, v};
    for (int i = 0; i < 3; i++) {
        rt->wb_ok = 0; // wpack now holds a linear weight
        cvt(rt->wpack, pw[i]);
        cvt(rt->bias, pb[i]);
        df_linear(dst[i], nrm, rt->wpack, rt->bias, (int)T, C, C, 0);
    }
    int Tk = (int)T;
    if (rt->ops) { // queries of this band against the keys / values of all bands
        Tk = rt->Hg * W;
        float *kg = rt->kv, *vg = rt->kv + (size_t)Tk * C;
        if (rt->st == DF_OK)
            rt->st = rt->ops->allgather_rows(rt->ops->user, k, kg, rt->Hg, (size_t)W * C);
        if (rt->st == DF_OK)
            rt->st = rt->ops->allgather_rows(rt->ops->user, v, vg, rt->Hg, (size_t)W * C);
        k = kg, v = vg;
    }
    df_attention(nrm, C, q, C, k, C, v, C, (int)T, Tk, 1, C);
    rt->wb_ok = 0;
    cvt(rt->wpack, a->o_w);
    cvt(rt->bias, a->o_b);
    df_linear(x, nrm, rt->wpack, rt->bias, (int)T, C, C, 1); // residual: x += out
}

static void mid_block(vae_rt *rt, const vae_mid *mb, int H, int W) {
    resnet(rt, &mb->r0, H, W);
    if (mb->has_attn) attention(rt, &mb->attn, H, W);
    resnet(rt, &mb->r1, H, W);
}

// Upsample2D: nearest x2 then 3x3 conv; rt->A [H][W][C] -> rt->B [2H][2W][C] (swapped).
static void upsample(vae_rt *rt, const vae_conv *c, int H, int W) {
    const int C = c->cin, H2 = 2 * H, W2 = 2 * W;
    const size_t row2 = (size_t)W2 * C;
    place_B(rt, (size_t)H2 * W2 * c->cout);
    const float *x = rt->A;
    float *y = rt->B;
    pack_conv(rt, c, rt->wpack, rt->bias);
    const int band = band_rows(rt, W2, C, c->cout);
    exchange(rt, x, H, W, C); // band decode: source rows -1 and H feed upsampled rows -1, 2H
    for (int r0 = 0; r0 < H2; r0 += band) {
        const int r1 = r0 + band < H2 ? r0 + band : H2;
        const int ht = r0 > 0 || rt->has_top, hb = r1 < H2 || rt->has_bot;
        const int a = ht ? r0 - 1 : 0, b = hb ? r1 + 1 : H2;
        for (int u = a; u < b; u++) { // upsampled row u = input row u/2, columns doubled
            const float *src = u < 0     ? rt->htop
                               : u >= H2 ? rt->hbot
                                         : x + (size_t)(u / 2) * W * C;
            float *dst = rt->s1 + (size_t)(u - (r0 - 1)) * row2;
            for (int xx = 0; xx < W; xx++) {
                memcpy(dst + (size_t)(2 * xx) * C, src + (size_t)xx * C, C * sizeof(float));
                memcpy(dst + (size_t)(2 * xx + 1) * C, src + (size_t)xx * C, C * sizeof(float));
            }
        }
        vconv(rt, y + (size_t)r0 * W2 * c->cout, rt->s1 + row2, ht ? rt->s1 : NULL,
                  hb ? rt->s1 + (size_t)(1 + r1 - r0) * row2 : NULL, rt->wpack, rt->bias, 1,
                  r1 - r0, W2, C, c->cout, 3, 1);
    }
    rt->Hg *= 2;
    swap_buffers(rt);
}

// conv_out(SiLU(GN(x))) with x = rt->A [H][W][C] -> out [H][W][cout] (caller memory).
static void norm_conv_out(vae_rt *rt, const vae_norm *g, const vae_conv *c, float *out, int H,
                          int W) {
    const float *x = rt->A;
    gn_prepare(rt, g, x, H, W);
    exchange(rt, x, H, W, c->cin);
    pack_conv(rt, c, rt->wpack, rt->bias);
    const int band = band_rows(rt, W, c->cin, c->cout);
    for (int r0 = 0; r0 < H; r0 += band) {
        const int r1 = r0 + band < H ? r0 + band : H;
        const float *top, *bot;
        const float *mid = gn_band(rt, x, H, W, c->cin, r0, r1, &top, &bot);
        vconv(rt, out + (size_t)r0 * W * c->cout, mid, top, bot, rt->wpack, rt->bias, 1, r1 - r0,
                  W, c->cin, c->cout, 3, 1);
    }
}

// Decoder of one image: z [h][w][latent] -> img [f*h][f*w][out_channels].
static void decode_one(vae_rt *rt, const float *z, int h, int w, float *img) {
    const df_vae_config *c = &rt->m->cfg;
    const vae_decoder *d = &rt->m->dec;
    const int n = c->levels, L = c->layers_per_block + 1;
    const size_t hw = (size_t)h * w;
    if (rt->arena) { // a fresh start (tiles reuse the runtime): A at the low end, empty
        rt->A = rt->arena;
        rt->a_low = 1;
    }
    rt->a_floats = 0;
    place_B(rt, hw * c->latent_channels);
    if (d->post_quant.w) {
        conv_full(rt, &d->post_quant, z, rt->B, h, w);
    } else {
        memcpy(rt->B, z, hw * c->latent_channels * sizeof(float));
    }
    dump(rt, "post_quant_conv", rt->B, h, w, c->latent_channels);
    conv_full(rt, &d->conv_in, rt->B, rt->A, h, w); // A: the arena's low end
    rt->a_floats = hw * d->conv_in.cout;
    dump(rt, "decoder.conv_in", rt->A, h, w, d->conv_in.cout);
    mid_block(rt, &d->mid, h, w);
    dump(rt, "decoder.mid_block", rt->A, h, w, d->mid.r1.cout);
    int H = h, W = w;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < L; j++) resnet(rt, &d->res[i * L + j], H, W);
        if (i < n - 1) {
            upsample(rt, &d->up[i], H, W);
            H *= 2, W *= 2;
        }
        char name[48];
        snprintf(name, sizeof name, "decoder.up_blocks.%d", i);
        dump(rt, name, rt->A, H, W, d->res[i * L + L - 1].cout);
    }
    norm_conv_out(rt, &d->norm_out, &d->conv_out, img, H, W);
}

// ---------------------------------------------------------------------------------------------
// Tiled decoding (diffusers AutoencoderKL.tiled_decode)

typedef struct tile_plan {
    int tl;        // tile_latent_min_size
    int ts;        // tile_sample_min_size
    int stride;    // overlap_size: latent step between tiles
    int blend;     // blend_extent (pixels)
    int row_limit; // kept pixels per tile side
} tile_plan;

static void plan_tiles(const df_vae *m, const df_vae_decode_opts *o, tile_plan *p) {
    const int f = df_vae_scale_factor(m);
    const double ov = (o && o->tile_overlap > 0) ? o->tile_overlap : 0.25;
    p->ts = (o && o->tile_sample_size > 0) ? o->tile_sample_size : m->cfg.sample_size;
    p->tl = (int)((double)p->ts / f);
    p->stride = (int)(p->tl * (1.0 - ov));
    p->blend = (int)(p->ts * ov);
    p->row_limit = p->ts - p->blend;
}

// Output extent along one side of n latent pixels, as diffusers concatenates the crops.
static long tiled_extent(const tile_plan *p, int n, int f) {
    long total = 0;
    for (int i = 0; i < n; i += p->stride) {
        const int t = n - i < p->tl ? n - i : p->tl;
        total += (long)t * f < p->row_limit ? (long)t * f : p->row_limit;
    }
    return total;
}

size_t df_vae_decode_bytes(const df_vae *m, int h, int w) {
    if (!m || h < 1 || w < 1) return 0;
    const int f = df_vae_scale_factor(m);
    return rt_bytes(m, dec_arena(&m->cfg, h, h, w), w * f, 1);
}

int df_vae_decode_tiles(const df_vae *m, int h, int w, const df_vae_decode_opts *o) {
    const int mode = o ? o->tiling : DF_VAE_TILING_AUTO;
    if (mode == DF_VAE_TILING_OFF) return 0;
    tile_plan p;
    plan_tiles(m, o, &p);
    if (h <= p.tl && w <= p.tl) return 0; // diffusers decodes untiled then
    if (mode == DF_VAE_TILING_FORCE) return 1;
    const size_t lim = (o && o->mem_limit) ? o->mem_limit : DF_VAE_DEFAULT_MEM_LIMIT;
    return df_vae_decode_bytes(m, h, w) > lim;
}

// b rows [0, e) = a rows [ha-e, ha) * (1 - y/e) + b rows * (y/e); a, b: [.][W][C] same width.
static void blend_v(const float *a, int ha, float *b, int hb, int W, int C, int extent) {
    int e = ha < hb ? ha : hb;
    if (extent < e) e = extent;
    const size_t row = (size_t)W * C;
    for (int y = 0; y < e; y++) {
        const float wa = (float)(1.0 - (double)y / e), wb = (float)((double)y / e);
        const float *ar = a + (size_t)(ha - e + y) * row;
        float *br = b + (size_t)y * row;
        for (size_t i = 0; i < row; i++) br[i] = ar[i] * wa + br[i] * wb;
    }
}

// The same on columns; a [H][wa][C], b [H][wb][C].
static void blend_h(const float *a, int wa_, float *b, int wb_, int H, int C, int extent) {
    int e = wa_ < wb_ ? wa_ : wb_;
    if (extent < e) e = extent;
    for (int x = 0; x < e; x++) {
        const float wa = (float)(1.0 - (double)x / e), wb = (float)((double)x / e);
        for (int y = 0; y < H; y++) {
            const float *ap = a + ((size_t)y * wa_ + (wa_ - e + x)) * C;
            float *bp = b + ((size_t)y * wb_ + x) * C;
            for (int c = 0; c < C; c++) bp[c] = ap[c] * wa + bp[c] * wb;
        }
    }
}

// One image, tiled. Keeps the decoded tiles of the previous and the current tile row.
static df_status decode_tiled(vae_rt *rt, const tile_plan *p, const float *z, int h, int w,
                              float *img) {
    const df_vae_config *c = &rt->m->cfg;
    const int f = df_vae_scale_factor(rt->m), Cl = c->latent_channels, Co = c->out_channels;
    const int ncols = (w + p->stride - 1) / p->stride;
    const size_t tile_px = (size_t)p->tl * f * p->tl * f;
    const int Wimg = w * f;
    float *ztile = df_malloc((size_t)p->tl * p->tl * Cl * sizeof(float));
    float *rows = df_malloc(2 * (size_t)ncols * tile_px * Co * sizeof(float));
    int *dims = malloc(4 * (size_t)ncols * sizeof(int)); // [2 rows][ncols][h, w] in pixels
    if (!ztile || !rows || !dims) {
        df_free(ztile);
        df_free(rows);
        free(dims);
        return DF_ERROR(DF_ERR_NOMEM, "VAE tile buffers (%d columns of %dx%d)", ncols,
                        p->tl * f, p->tl * f);
    }
    float *prev = rows, *cur = rows + (size_t)ncols * tile_px * Co;
    int *pdim = dims, *cdim = dims + 2 * ncols;
    long oy = 0;
    for (int i = 0, r = 0; i < h; i += p->stride, r++) {
        const int th = h - i < p->tl ? h - i : p->tl;
        long ox = 0;
        int keep_h = 0;
        for (int j = 0, cc = 0; j < w; j += p->stride, cc++) {
            const int tw = w - j < p->tl ? w - j : p->tl;
            for (int y = 0; y < th; y++)
                memcpy(ztile + (size_t)y * tw * Cl, z + ((size_t)(i + y) * w + j) * Cl,
                       (size_t)tw * Cl * sizeof(float));
            float *t = cur + (size_t)cc * tile_px * Co;
            const int ph = th * f, pw = tw * f;
            decode_one(rt, ztile, th, tw, t);
            cdim[2 * cc] = ph, cdim[2 * cc + 1] = pw;
            if (r > 0) blend_v(prev + (size_t)cc * tile_px * Co, pdim[2 * cc], t, ph, pw, Co,
                               p->blend);
            if (cc > 0) blend_h(cur + (size_t)(cc - 1) * tile_px * Co, cdim[2 * (cc - 1) + 1], t,
                                pw, ph, Co, p->blend);
            const int kh = ph < p->row_limit ? ph : p->row_limit;
            const int kw = pw < p->row_limit ? pw : p->row_limit;
            for (int y = 0; y < kh; y++)
                memcpy(img + ((size_t)(oy + y) * Wimg + ox) * Co, t + (size_t)y * pw * Co,
                       (size_t)kw * Co * sizeof(float));
            ox += kw;
            keep_h = kh;
        }
        oy += keep_h;
        float *tf = prev;
        prev = cur, cur = tf;
        int *td = pdim;
        pdim = cdim, cdim = td;
    }
    df_free(ztile);
    df_free(rows);
    free(dims);
    return DF_OK;
}

df_status df_vae_decode(df_vae *m, const float *z, int B, int h, int w, float *image,
                        const df_vae_decode_opts *opts) {
    DF_FAIL_IF(!m || !z || !image, DF_ERR_ARG, "NULL argument");
    DF_FAIL_IF(B < 1 || h < 1 || w < 1 || h > 65536 || w > 65536, DF_ERR_ARG,
               "invalid latent shape [%d][%d][%d]", B, h, w);
    DF_FAIL_IF(opts && (opts->tiling < DF_VAE_TILING_AUTO || opts->tiling > DF_VAE_TILING_FORCE),
               DF_ERR_ARG, "invalid tiling mode %d", opts->tiling);
    DF_FAIL_IF(opts && (opts->tile_overlap < 0 || opts->tile_overlap >= 1), DF_ERR_ARG,
               "tile_overlap %g outside [0, 1)", opts->tile_overlap);
    const df_vae_config *c = &m->cfg;
    const int f = df_vae_scale_factor(m);
    const int tiled = df_vae_decode_tiles(m, h, w, opts);
    tile_plan p;
    plan_tiles(m, opts, &p);
    int th = h, tw = w; // largest decoder input
    if (tiled) {
        DF_FAIL_IF(p.tl < 1 || p.stride < 1 || p.row_limit < 1, DF_ERR_UNSUPPORTED,
                   "tile sample size %d too small for tiling (scale factor %d)", p.ts, f);
        const long eh = tiled_extent(&p, h, f), ew = tiled_extent(&p, w, f);
        DF_FAIL_IF(eh != (long)h * f || ew != (long)w * f, DF_ERR_UNSUPPORTED,
                   "tile sample size %d with overlap %g gives a %ldx%ld image for a %dx%d "
                   "latent (expected %dx%d)", p.ts, opts && opts->tile_overlap > 0 ?
                   opts->tile_overlap : 0.25, eh, ew, h, w, h * f, w * f);
        th = h < p.tl ? h : p.tl;
        tw = w < p.tl ? w : p.tl;
    }
    vae_rt rt;
    DF_TRY(rt_alloc(&rt, m, dec_arena(c, th, th, tw), tw * f, 1));
    if (opts && !tiled) {
        rt.dump = opts->dump;
        rt.dump_user = opts->dump_user;
    }
    df_status st = DF_OK;
    const size_t zin = (size_t)h * w * c->latent_channels;
    const size_t out = (size_t)h * f * w * f * c->out_channels;
    for (int b = 0; b < B && st == DF_OK; b++) {
        rt.b = b;
        if (tiled) st = decode_tiled(&rt, &p, z + b * zin, h, w, image + b * out);
        else decode_one(&rt, z + b * zin, h, w, image + b * out);
    }
    rt_free(&rt);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Band decode (patch parallel; see vae.h)

void df_vae_band_split(int R, int n, int k, int *r0, int *r1) {
    df_bands_range(R, n, k, r0, r1); // the runtime's band rule (naive patch, UNet bands)
}

// Largest row of any decoder tensor (floats): the halo buffers.
static size_t dec_max_row(const df_vae_config *c, int w) {
    return (size_t)w * ((size_t)1 << (c->levels - 1)) * (size_t)max_channels(c);
}

size_t df_vae_decode_band_bytes(const df_vae *m, int h, int w, int k, int n) {
    if (!m || h < 1 || w < 1 || n < 1 || k < 0 || k >= n) return 0;
    int r0, r1;
    df_vae_band_split(h, n, k, &r0, &r1);
    const df_vae_config *c = &m->cfg;
    const int hin = (r0 > 0) + (r1 < h) + r1 - r0; // post_quant_conv reads the halo rows too
    size_t b = rt_bytes(m, dec_arena(c, hin, r1 - r0, w), w * df_vae_scale_factor(m), 1);
    b += 2 * dec_max_row(c, w) * sizeof(float);
    if (m->dec.mid.has_attn) b += 2 * (size_t)h * w * c->block_out[c->levels - 1] * sizeof(float);
    return b;
}

df_status df_vae_decode_band(df_vae *m, const float *z, int h, int w, const df_vae_band_ops *ops,
                             float *img) {
    DF_FAIL_IF(!m || !z || !ops || !img, DF_ERR_ARG, "NULL argument");
    DF_FAIL_IF(ops->n < 1 || ops->k < 0 || ops->k >= ops->n, DF_ERR_ARG, "band %d of %d",
               ops->k, ops->n);
    DF_FAIL_IF(h < ops->n || w < 1 || h > 65536 || w > 65536, DF_ERR_ARG,
               "a %dx%d latent cannot be cut into %d bands of at least one row", h, w, ops->n);
    const df_vae_config *c = &m->cfg;
    const vae_decoder *d = &m->dec;
    const int f = df_vae_scale_factor(m), Cl = c->latent_channels, n = c->levels;
    const int L = c->layers_per_block + 1, top = d->conv_in.cout;
    int r0, r1;
    df_vae_band_split(h, ops->n, ops->k, &r0, &r1);
    const int hl = r1 - r0;
    const int a = r0 > 0 ? r0 - 1 : 0, b = r1 < h ? r1 + 1 : h; // latent rows incl. halos

    vae_rt rt;
    df_status st = rt_alloc(&rt, m, dec_arena(c, b - a, hl, w), w * f, 1);
    if (st == DF_OK) {
        rt.halo_floats = dec_max_row(c, w);
        rt.htop = df_malloc(rt.halo_floats * sizeof(float));
        rt.hbot = df_malloc(rt.halo_floats * sizeof(float));
        if (d->mid.has_attn) rt.kv = df_malloc(2 * (size_t)h * w * top * sizeof(float));
        if (!rt.htop || !rt.hbot || (d->mid.has_attn && !rt.kv)) {
            rt_free(&rt);
            st = DF_ERROR(DF_ERR_NOMEM, "VAE band buffers (%d latent rows of %d)", hl, h);
        }
    }
    // every band learns whether all could allocate before any halo traffic
    double fail = st != DF_OK;
    df_status cs = ops->allreduce_f64(ops->user, &fail, 1);
    if (st != DF_OK) return st;
    if (cs != DF_OK || fail != 0) {
        rt_free(&rt);
        return cs != DF_OK ? cs
                           : DF_ERROR(DF_ERR_NOMEM, "VAE band decode: another band failed to "
                                                    "allocate its buffers");
    }
    rt.ops = ops;
    rt.has_top = r0 > 0;
    rt.has_bot = r1 < h;
    rt.Hg = h;

    // post_quant_conv (1x1) on the band and its halo rows, then conv_in with those halos
    const size_t zrow = (size_t)w * Cl;
    place_B(&rt, (size_t)(b - a) * zrow);
    if (d->post_quant.w) conv_full(&rt, &d->post_quant, z + (size_t)a * zrow, rt.B, b - a, w);
    else memcpy(rt.B, z + (size_t)a * zrow, (size_t)(b - a) * zrow * sizeof(float));
    pack_conv(&rt, &d->conv_in, rt.wpack, rt.bias);
    vconv(&rt, rt.A, rt.B + (size_t)(r0 - a) * zrow, rt.has_top ? rt.B : NULL,
              rt.has_bot ? rt.B + (size_t)(r1 - a) * zrow : NULL, rt.wpack, rt.bias, 1, hl, w, Cl,
              top, 3, 1);
    rt.a_floats = (size_t)hl * w * top; // conv_in wrote A at the arena's low end
    mid_block(&rt, &d->mid, hl, w);
    int H = hl, W = w;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < L; j++) resnet(&rt, &d->res[i * L + j], H, W);
        if (i < n - 1) {
            upsample(&rt, &d->up[i], H, W);
            H *= 2, W *= 2;
        }
    }
    norm_conv_out(&rt, &d->norm_out, &d->conv_out, img, H, W);
    st = rt.st;
    rt_free(&rt);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Encoder

// Downsample2D of the encoder: pad (0,1,0,1) then 3x3 stride 2 without padding, i.e.
// out[y][x] = sum W[ky][kx] in[2y+ky][2x+kx] (in = 0 past the bottom/right edge). That equals the
// stride-1 pad-1 conv S at (2y+1, 2x+1), which df_conv2d computes; we evaluate S on the rows
// 2y0+1 .. 2y1-1 of each band and keep the odd rows/columns. rt->A [H][W][C] -> rt->B
// [H/2][W/2][C] (H, W even), swapped.
static void downsample(vae_rt *rt, const vae_conv *c, int H, int W) {
    const int C = c->cin, Ho = H / 2, Wo = W / 2;
    const size_t row = (size_t)W * C;
    const float *x = rt->A;
    float *y = rt->B;
    pack_conv(rt, c, rt->wpack, rt->bias);
    int band = band_rows(rt, W, C, c->cout) / 2; // output rows per band (2*band full rows)
    if (band < 1) band = 1;
    for (int y0 = 0; y0 < Ho; y0 += band) {
        const int y1 = y0 + band < Ho ? y0 + band : Ho;
        const int f0 = 2 * y0 + 1, f1 = 2 * y1; // full-resolution rows [f0, f1)
        const float *top = x + (size_t)(f0 - 1) * row;
        const float *bot = f1 < H ? x + (size_t)f1 * row : NULL;
        vconv(rt, rt->s2, x + (size_t)f0 * row, top, bot, rt->wpack, rt->bias, 1, f1 - f0, W, C,
                  c->cout, 3, 1);
        for (int yy = y0; yy < y1; yy++) {
            const float *src = rt->s2 + (size_t)(2 * yy + 1 - f0) * W * c->cout;
            float *dst = y + (size_t)yy * Wo * c->cout;
            for (int xx = 0; xx < Wo; xx++)
                memcpy(dst + (size_t)xx * c->cout, src + (size_t)(2 * xx + 1) * c->cout,
                       (size_t)c->cout * sizeof(float));
        }
    }
    swap_buffers(rt);
}

df_status df_vae_encode(df_vae *m, const float *image, int B, int H, int W, float *mean,
                        float *logvar) {
    DF_FAIL_IF(!m || !image || !mean || !logvar, DF_ERR_ARG, "NULL argument");
    DF_FAIL_IF(!m->has_encoder, DF_ERR_ARG, "the VAE was created without its encoder");
    const df_vae_config *c = &m->cfg;
    const int f = df_vae_scale_factor(m), n = c->levels, L = c->layers_per_block;
    DF_FAIL_IF(B < 1 || H < f || W < f || H % f || W % f || H > 65536 || W > 65536, DF_ERR_ARG,
               "image %dx%d is not a positive multiple of %d", H, W, f);
    const int Cl = c->latent_channels;
    const vae_encoder *e = &m->enc;
    vae_rt rt;
    DF_TRY(rt_alloc(&rt, m, enc_max_t(c, H, W), W, 0));
    const int h = H / f, w = W / f;
    const size_t hw = (size_t)h * w;
    float *moments = df_malloc(2 * hw * 2 * Cl * sizeof(float)); // conv_out, quant_conv outputs
    if (!moments) {
        rt_free(&rt);
        return DF_ERROR(DF_ERR_NOMEM, "VAE moments [%d][%d][%d]", h, w, 2 * Cl);
    }
    for (int b = 0; b < B; b++) {
        rt.b = b;
        conv_full(&rt, &e->conv_in, image + (size_t)b * H * W * c->in_channels, rt.A, H, W);
        int Hc = H, Wc = W;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < L; j++) resnet(&rt, &e->res[i * L + j], Hc, Wc);
            if (i < n - 1) {
                downsample(&rt, &e->down[i], Hc, Wc);
                Hc /= 2, Wc /= 2;
            }
        }
        mid_block(&rt, &e->mid, Hc, Wc);
        float *mom = moments, *mom2 = moments + hw * 2 * Cl; // [h][w][2*Cl] each
        norm_conv_out(&rt, &e->norm_out, &e->conv_out, mom, Hc, Wc);
        if (e->quant.w) {
            pack_conv(&rt, &e->quant, rt.wpack, rt.bias);
            vconv(&rt, mom2, mom, NULL, NULL, rt.wpack, rt.bias, 1, h, w, 2 * Cl, 2 * Cl, 1, 1);
            mom = mom2;
        }
        float *mb = mean + (size_t)b * hw * Cl, *lb = logvar + (size_t)b * hw * Cl;
        for (size_t p = 0; p < hw; p++)
            for (int ch = 0; ch < Cl; ch++) {
                mb[p * Cl + ch] = mom[p * 2 * Cl + ch];
                float lv = mom[p * 2 * Cl + Cl + ch];
                lb[p * Cl + ch] = lv < -30.0f ? -30.0f : (lv > 20.0f ? 20.0f : lv);
            }
    }
    df_free(moments);
    rt_free(&rt);
    return DF_OK;
}
