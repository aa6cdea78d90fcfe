// UNet configuration: diffusers config.json parsing, derivation from tensor names/shapes
// (single-file checkpoints), validation (unet.h, sdxl.md §3.1).
#include "model/unet.h"

#include "core/textfile.h"
#include "io/json_util.h"

#include <cjson/cJSON.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Small JSON helpers (io/json_util.h; all errors name the file and the field)

// Optional fields with a default for absent / null (json_util keeps *out then).
static df_status jint(const cJSON *root, const char *path, const char *key, int def, int *out) {
    *out = def;
    return df_json_int(root, path, key, -DF_JSON_INT_MAX, DF_JSON_INT_MAX, out);
}

static df_status jnum(const cJSON *root, const char *path, const char *key, double def,
                      double *out) {
    *out = def;
    return df_json_num(root, path, key, out);
}

static df_status jbool(const cJSON *root, const char *path, const char *key, int def, int *out) {
    *out = def;
    return df_json_bool(root, path, key, out);
}

// Optional string: absent -> def; null -> NULL.
static df_status jstr(const cJSON *root, const char *path, const char *key, const char *def,
                      const char **out) {
    *out = def;
    return df_json_str(root, path, key, out);
}

// A field that must be absent, null, false or the given default string/number.
static df_status expect_unset(const cJSON *root, const char *path, const char *key,
                              const char *ok_str) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it) || cJSON_IsFalse(it)) return DF_OK;
    if (ok_str && cJSON_IsString(it) && strcmp(it->valuestring, ok_str) == 0) return DF_OK;
    char *txt = cJSON_PrintUnformatted(it);
    df_status st = DF_ERROR(DF_ERR_UNSUPPORTED, "%s: unsupported %s = %s (expected %s)", path, key,
                            txt ? txt : "?", ok_str ? ok_str : "null/false");
    free(txt);
    return st;
}

// int or list of n ints -> out[n]. Absent/null -> def for all.
static df_status jint_list(const cJSON *root, const char *path, const char *key, int n, int def,
                           int *out, int *was_set) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (was_set) *was_set = it && !cJSON_IsNull(it);
    if (!it || cJSON_IsNull(it)) {
        for (int i = 0; i < n; i++) out[i] = def;
        return DF_OK;
    }
    if (df_json_is_int(it)) {
        for (int i = 0; i < n; i++) out[i] = (int)it->valuedouble;
        return DF_OK;
    }
    DF_FAIL_IF(!cJSON_IsArray(it) || cJSON_GetArraySize(it) != n, DF_ERR_FORMAT,
               "%s: field '%s' must be an integer or a list of %d integers", path, key, n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(it, i);
        DF_FAIL_IF(!df_json_is_int(e), DF_ERR_FORMAT, "%s: %s[%d] must be an integer", path, key, i);
        out[i] = (int)e->valuedouble;
    }
    return DF_OK;
}

// transformer_layers_per_block-like field: int, list of n ints, or list of n lists of `slots`
// ints -> out[n][slots]. *nested set when lists of lists were given.
static df_status jlayers(const cJSON *it, const char *path, const char *key, int n, int slots,
                         int out[][DF_UNET_MAX_LAYERS], int *nested) {
    *nested = 0;
    if (df_json_is_int(it)) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < slots; j++) out[i][j] = (int)it->valuedouble;
        return DF_OK;
    }
    DF_FAIL_IF(!cJSON_IsArray(it) || cJSON_GetArraySize(it) != n, DF_ERR_FORMAT,
               "%s: field '%s' must be an integer or a list of %d entries", path, key, n);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(it, i);
        if (df_json_is_int(e)) {
            for (int j = 0; j < slots; j++) out[i][j] = (int)e->valuedouble;
            continue;
        }
        DF_FAIL_IF(!cJSON_IsArray(e) || cJSON_GetArraySize(e) != slots, DF_ERR_FORMAT,
                   "%s: %s[%d] must be an integer or a list of %d integers", path, key, i, slots);
        *nested = 1;
        for (int j = 0; j < slots; j++) {
            const cJSON *v = cJSON_GetArrayItem(e, j);
            DF_FAIL_IF(!df_json_is_int(v), DF_ERR_FORMAT, "%s: %s[%d][%d] must be an integer", path,
                       key, i, j);
            out[i][j] = (int)v->valuedouble;
        }
    }
    return DF_OK;
}

static void set_arch(df_unet_config *c) {
    static const int xl[3] = {320, 640, 1280}, sd[4] = {320, 640, 1280, 1280};
    int is_xl = c->n_levels == 3 && memcmp(c->block_out, xl, sizeof xl) == 0;
    int is_sd = c->n_levels == 4 && memcmp(c->block_out, sd, sizeof sd) == 0;
    const char *a = "custom";
    if (is_xl && c->addition_embed) a = "sdxl";
    else if (is_sd && c->cross_attention_dim == 768) a = "sd1";
    else if (is_sd && c->cross_attention_dim == 1024) a = "sd2";
    snprintf(c->arch, sizeof c->arch, "%s", a);
}

static void set_defaults(df_unet_config *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = c->out_channels = 4;
    c->norm_groups = 32;
    c->norm_eps = 1e-5f;
    c->transformer_norm_eps = 1e-6f;
    c->layer_norm_eps = 1e-5f;
    c->flip_sin_to_cos = 1;
    c->n_time_ids = 6;
    c->resnet_out_scale = 1.0f;
    c->mid_out_scale = 1.0f;
    c->mid_attn = 1;
}

// ---------------------------------------------------------------------------------------------
// config.json

static df_status parse_config(const cJSON *r, const char *path, df_unet_config *c) {
    set_defaults(c);
    const char *cls = NULL;
    DF_TRY(jstr(r, path, "_class_name", "UNet2DConditionModel", &cls));
    DF_FAIL_IF(!cls || strcmp(cls, "UNet2DConditionModel") != 0, DF_ERR_UNSUPPORTED,
               "%s: unsupported _class_name '%s' (expected UNet2DConditionModel)", path,
               cls ? cls : "null");
    // Options this implementation does not support must have their default value.
    static const char *const unset[] = {
        "class_embed_type", "num_class_embeds", "encoder_hid_dim", "encoder_hid_dim_type",
        "time_cond_proj_dim", "time_embedding_act_fn", "timestep_post_act", "dual_cross_attention",
        "class_embeddings_concat", "mid_block_only_cross_attention", "resnet_skip_time_act",
        "cross_attention_norm"};
    for (size_t i = 0; i < sizeof unset / sizeof unset[0]; i++)
        DF_TRY(expect_unset(r, path, unset[i], NULL));
    DF_TRY(expect_unset(r, path, "act_fn", "silu"));
    DF_TRY(expect_unset(r, path, "time_embedding_type", "positional"));
    DF_TRY(expect_unset(r, path, "resnet_time_scale_shift", "default"));
    DF_TRY(expect_unset(r, path, "attention_type", "default"));
    // only_cross_attention: false or a list of false
    const cJSON *oca = cJSON_GetObjectItemCaseSensitive(r, "only_cross_attention");
    if (cJSON_IsArray(oca)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, oca) DF_FAIL_IF(!cJSON_IsFalse(e), DF_ERR_UNSUPPORTED,
                                              "%s: unsupported only_cross_attention = true", path);
    } else {
        DF_TRY(expect_unset(r, path, "only_cross_attention", NULL));
    }

    DF_TRY(jint(r, path, "in_channels", 4, &c->in_channels));
    DF_TRY(jint(r, path, "out_channels", 4, &c->out_channels));
    int k_in, k_out, dpad;
    DF_TRY(jint(r, path, "conv_in_kernel", 3, &k_in));
    DF_TRY(jint(r, path, "conv_out_kernel", 3, &k_out));
    DF_TRY(jint(r, path, "downsample_padding", 1, &dpad));
    DF_FAIL_IF(k_in != 3 || k_out != 3, DF_ERR_UNSUPPORTED,
               "%s: unsupported conv_in_kernel/conv_out_kernel %d/%d (expected 3)", path, k_in,
               k_out);
    DF_FAIL_IF(dpad != 1, DF_ERR_UNSUPPORTED, "%s: unsupported downsample_padding %d (expected 1)",
               path, dpad);

    // Blocks
    const cJSON *boc = cJSON_GetObjectItemCaseSensitive(r, "block_out_channels");
    DF_FAIL_IF(!cJSON_IsArray(boc), DF_ERR_FORMAT, "%s: field 'block_out_channels' missing", path);
    int n = cJSON_GetArraySize(boc);
    DF_FAIL_IF(n < 1 || n > DF_UNET_MAX_LEVELS, DF_ERR_UNSUPPORTED,
               "%s: block_out_channels has %d entries (supported 1..%d)", path, n,
               DF_UNET_MAX_LEVELS);
    c->n_levels = n;
    DF_TRY(jint_list(r, path, "block_out_channels", n, 0, c->block_out, NULL));
    const cJSON *dbt = cJSON_GetObjectItemCaseSensitive(r, "down_block_types");
    const cJSON *ubt = cJSON_GetObjectItemCaseSensitive(r, "up_block_types");
    DF_FAIL_IF(!cJSON_IsArray(dbt) || cJSON_GetArraySize(dbt) != n, DF_ERR_FORMAT,
               "%s: field 'down_block_types' must be a list of %d strings", path, n);
    DF_FAIL_IF(!cJSON_IsArray(ubt) || cJSON_GetArraySize(ubt) != n, DF_ERR_FORMAT,
               "%s: field 'up_block_types' must be a list of %d strings", path, n);
    for (int i = 0; i < n; i++) {
        const cJSON *d = cJSON_GetArrayItem(dbt, i), *u = cJSON_GetArrayItem(ubt, i);
        DF_FAIL_IF(!cJSON_IsString(d) || !cJSON_IsString(u), DF_ERR_FORMAT,
                   "%s: block types must be strings (entry %d)", path, i);
        if (strcmp(d->valuestring, "CrossAttnDownBlock2D") == 0) c->down_attn[i] = 1;
        else DF_FAIL_IF(strcmp(d->valuestring, "DownBlock2D") != 0, DF_ERR_UNSUPPORTED,
                        "%s: unsupported down_block_types[%d] '%s' (supported: DownBlock2D, "
                        "CrossAttnDownBlock2D)", path, i, d->valuestring);
        if (strcmp(u->valuestring, "CrossAttnUpBlock2D") == 0) c->up_attn[i] = 1;
        else DF_FAIL_IF(strcmp(u->valuestring, "UpBlock2D") != 0, DF_ERR_UNSUPPORTED,
                        "%s: unsupported up_block_types[%d] '%s' (supported: UpBlock2D, "
                        "CrossAttnUpBlock2D)", path, i, u->valuestring);
    }
    const char *mid = NULL;
    DF_TRY(jstr(r, path, "mid_block_type", "UNetMidBlock2DCrossAttn", &mid));
    if (!mid) c->mid_attn = 0;
    else DF_FAIL_IF(strcmp(mid, "UNetMidBlock2DCrossAttn") != 0, DF_ERR_UNSUPPORTED,
                    "%s: unsupported mid_block_type '%s' (supported: UNetMidBlock2DCrossAttn, "
                    "null)", path, mid);
    DF_TRY(jint(r, path, "layers_per_block", 2, &c->layers_per_block));
    DF_FAIL_IF(c->layers_per_block < 1 || c->layers_per_block + 1 > DF_UNET_MAX_LAYERS,
               DF_ERR_UNSUPPORTED, "%s: layers_per_block %d (supported 1..%d)", path,
               c->layers_per_block, DF_UNET_MAX_LAYERS - 1);
    const cJSON *lpb = cJSON_GetObjectItemCaseSensitive(r, "layers_per_block");
    DF_FAIL_IF(cJSON_IsArray(lpb), DF_ERR_UNSUPPORTED, "%s: per-block layers_per_block lists are "
               "not supported", path);

    // Heads (quirk: attention_head_dim is the number of heads unless num_attention_heads is set)
    int heads_set = 0;
    DF_TRY(jint_list(r, path, "num_attention_heads", n, 0, c->heads_down, &heads_set));
    if (!heads_set) DF_TRY(jint_list(r, path, "attention_head_dim", n, 8, c->heads_down, NULL));
    for (int i = 0; i < n; i++) c->heads_up[i] = c->heads_down[n - 1 - i];
    c->heads_mid = c->heads_down[n - 1];

    // Transformer depth
    const int L = c->layers_per_block;
    const cJSON *tl = cJSON_GetObjectItemCaseSensitive(r, "transformer_layers_per_block");
    const cJSON *rtl = cJSON_GetObjectItemCaseSensitive(r, "reverse_transformer_layers_per_block");
    int nested = 0;
    if (!tl || cJSON_IsNull(tl)) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < L; j++) c->tl_down[i][j] = 1;
    } else {
        DF_TRY(jlayers(tl, path, "transformer_layers_per_block", n, L, c->tl_down, &nested));
    }
    // mid: transformer_layers_per_block[-1] (an int, or the first of a per-layer list)
    c->tl_mid = c->tl_down[n - 1][0];
    if (rtl && !cJSON_IsNull(rtl)) {
        int nested2;
        DF_TRY(jlayers(rtl, path, "reverse_transformer_layers_per_block", n, L + 1, c->tl_up,
                       &nested2));
    } else {
        DF_FAIL_IF(nested, DF_ERR_FORMAT, "%s: per-layer transformer_layers_per_block needs "
                   "reverse_transformer_layers_per_block", path);
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= L; j++) c->tl_up[i][j] = c->tl_down[n - 1 - i][0];
    }

    // Cross attention dim: int, or a list with equal entries
    int cad[DF_UNET_MAX_LEVELS];
    DF_TRY(jint_list(r, path, "cross_attention_dim", n, 1280, cad, NULL));
    for (int i = 1; i < n; i++)
        DF_FAIL_IF(cad[i] != cad[0], DF_ERR_UNSUPPORTED,
                   "%s: per-block cross_attention_dim values differ (%d vs %d)", path, cad[0],
                   cad[i]);
    c->cross_attention_dim = cad[0];
    DF_TRY(jbool(r, path, "use_linear_projection", 0, &c->use_linear_projection));
    DF_TRY(jint(r, path, "norm_num_groups", 32, &c->norm_groups));
    double d;
    DF_TRY(jnum(r, path, "norm_eps", 1e-5, &d));
    c->norm_eps = (float)d;
    DF_TRY(jbool(r, path, "flip_sin_to_cos", 1, &c->flip_sin_to_cos));
    DF_TRY(jnum(r, path, "freq_shift", 0, &d));
    c->freq_shift = (float)d;
    DF_TRY(jbool(r, path, "center_input_sample", 0, &c->center_input_sample));
    DF_TRY(jnum(r, path, "resnet_out_scale_factor", 1.0, &d));
    c->resnet_out_scale = (float)d;
    DF_TRY(jnum(r, path, "mid_block_scale_factor", 1.0, &d));
    c->mid_out_scale = (float)d;
    c->time_proj_dim = c->block_out[0];
    DF_TRY(jint(r, path, "time_embedding_dim", 4 * c->block_out[0], &c->time_embed_dim));

    // Addition embedding
    const char *aet = NULL;
    DF_TRY(jstr(r, path, "addition_embed_type", NULL, &aet));
    if (aet) {
        DF_FAIL_IF(strcmp(aet, "text_time") != 0, DF_ERR_UNSUPPORTED,
                   "%s: unsupported addition_embed_type '%s' (supported: text_time, null)", path,
                   aet);
        c->addition_embed = 1;
        DF_TRY(jint(r, path, "addition_time_embed_dim", 0, &c->addition_time_embed_dim));
        DF_TRY(jint(r, path, "projection_class_embeddings_input_dim", 0, &c->add_in_dim));
        DF_FAIL_IF(c->addition_time_embed_dim <= 0 || c->add_in_dim <= 0, DF_ERR_FORMAT,
                   "%s: addition_embed_type text_time needs addition_time_embed_dim and "
                   "projection_class_embeddings_input_dim", path);
        c->text_embeds_dim = c->add_in_dim - c->n_time_ids * c->addition_time_embed_dim;
    }
    set_arch(c);
    return df_unet_config_validate(c);
}

df_status df_unet_config_from_json(const char *path, df_unet_config *cfg) {
    cJSON *root;
    DF_TRY(df_json_load_object(path, (size_t)1 << 20, &root));
    df_status st = parse_config(root, path, cfg);
    cJSON_Delete(root);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Config from tensors

static const df_st_tensor *wfind(const df_weights *w, const char *fmt, ...) DF_PRINTF(2, 3);
static const df_st_tensor *wfind(const df_weights *w, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return df_weights_find(w, name);
}

// Number of consecutive transformer blocks under PREFIX.
static int count_tblocks(const df_weights *w, const char *prefix) {
    char name[320];
    int k = 0;
    for (;; k++) {
        snprintf(name, sizeof name, "%s.transformer_blocks.%d.attn1.to_q.weight", prefix, k);
        if (!df_weights_find(w, name)) break;
    }
    return k;
}

// First integer after "key:" in the yaml text, or def.
static int yaml_int(const char *txt, const char *key, int def) {
    size_t kl = strlen(key);
    for (const char *p = txt; (p = strstr(p, key)) != NULL; p += kl) {
        if (p > txt && p[-1] != ' ' && p[-1] != '\n' && p[-1] != '\t') continue;
        if (p[kl] != ':') continue;
        char *end;
        long v = strtol(p + kl + 1, &end, 10);
        if (end != p + kl + 1) return (int)v;
    }
    return def;
}

df_status df_unet_config_from_weights(const df_weights *w, const char *ldm_yaml,
                                      df_unet_config *c) {
    set_defaults(c);
    const char *src = df_weights_path(w);
    int yaml_heads = -1, yaml_head_ch = -1, yaml_outdim = -1;
    if (ldm_yaml) {
        char *txt;
        DF_TRY(df_read_text_file(ldm_yaml, (size_t)1 << 20, 0, &txt, NULL));
        yaml_heads = yaml_int(txt, "num_heads", -1);
        yaml_head_ch = yaml_int(txt, "num_head_channels", -1);
        yaml_outdim = yaml_int(txt, "outdim", -1);
        free(txt);
    }
    const df_st_tensor *t = df_weights_find(w, "conv_in.weight");
    DF_FAIL_IF(!t, DF_ERR_FORMAT,
               "%s: not a UNet2DConditionModel checkpoint (no 'conv_in.weight' / "
               "'model.diffusion_model.input_blocks.0.0.weight')", src);
    DF_FAIL_IF(t->ndim != 4 || t->shape[2] != 3 || t->shape[3] != 3, DF_ERR_UNSUPPORTED,
               "%s: unknown UNet architecture: conv_in.weight is not a 3x3 conv", src);
    c->in_channels = (int)t->shape[1];
    t = df_weights_find(w, "conv_out.weight");
    DF_FAIL_IF(!t || t->ndim != 4, DF_ERR_FORMAT, "%s: missing tensor 'conv_out.weight'", src);
    c->out_channels = (int)t->shape[0];

    int n = 0;
    while (n < DF_UNET_MAX_LEVELS && wfind(w, "down_blocks.%d.resnets.0.conv1.weight", n))
        n++;
    DF_FAIL_IF(n == 0, DF_ERR_UNSUPPORTED,
               "%s: unknown UNet architecture: no 'down_blocks.0.resnets.0.conv1.weight'", src);
    DF_FAIL_IF(wfind(w, "down_blocks.%d.resnets.0.conv1.weight", n), DF_ERR_UNSUPPORTED,
               "%s: more than %d UNet levels", src, DF_UNET_MAX_LEVELS);
    c->n_levels = n;
    int L = 0;
    while (L < DF_UNET_MAX_LAYERS && wfind(w, "down_blocks.0.resnets.%d.conv1.weight", L))
        L++;
    DF_FAIL_IF(L + 1 > DF_UNET_MAX_LAYERS, DF_ERR_UNSUPPORTED, "%s: too many resnets per block",
               src);
    c->layers_per_block = L;
    int linear = -1;
    for (int i = 0; i < n; i++) {
        t = wfind(w, "down_blocks.%d.resnets.0.conv1.weight", i);
        c->block_out[i] = (int)t->shape[0];
        c->down_attn[i] = wfind(w, "down_blocks.%d.attentions.0.proj_in.weight", i) != NULL;
        c->up_attn[i] = wfind(w, "up_blocks.%d.attentions.0.proj_in.weight", i) != NULL;
        char prefix[128];
        for (int j = 0; j < L && c->down_attn[i]; j++) {
            snprintf(prefix, sizeof prefix, "down_blocks.%d.attentions.%d", i, j);
            c->tl_down[i][j] = count_tblocks(w, prefix);
        }
        for (int j = 0; j <= L && c->up_attn[i]; j++) {
            snprintf(prefix, sizeof prefix, "up_blocks.%d.attentions.%d", i, j);
            c->tl_up[i][j] = count_tblocks(w, prefix);
        }
        const df_st_tensor *p = wfind(w, "down_blocks.%d.attentions.0.proj_in.weight", i);
        if (!p) p = wfind(w, "up_blocks.%d.attentions.0.proj_in.weight", i);
        if (p && linear < 0) linear = p->ndim == 2;
    }
    // The mid block: resnets + a transformer, or nothing.
    c->mid_attn = df_weights_find(w, "mid_block.resnets.0.conv1.weight") != NULL;
    if (c->mid_attn) {
        c->tl_mid = count_tblocks(w, "mid_block.attentions.0");
        DF_FAIL_IF(c->tl_mid == 0, DF_ERR_UNSUPPORTED,
                   "%s: unknown UNet architecture: mid block without attention (UNetMidBlock2D)",
                   src);
        t = df_weights_find(w, "mid_block.attentions.0.proj_in.weight");
        if (t && linear < 0) linear = t->ndim == 2;
    }
    c->use_linear_projection = linear > 0;
    // Context dim from any attn2.to_k
    const df_st_tensor *k2 = df_weights_find(w, "mid_block.attentions.0.transformer_blocks.0."
                                                "attn2.to_k.weight");
    for (int i = 0; i < n && !k2; i++) {
        k2 = wfind(w, "down_blocks.%d.attentions.0.transformer_blocks.0.attn2.to_k.weight", i);
        if (!k2)
            k2 = wfind(w, "up_blocks.%d.attentions.0.transformer_blocks.0.attn2.to_k.weight", i);
    }
    DF_FAIL_IF(!k2 || k2->ndim != 2, DF_ERR_UNSUPPORTED,
               "%s: unknown UNet architecture: no cross-attention (attn2.to_k) found", src);
    c->cross_attention_dim = (int)k2->shape[1];
    // Time embedding
    t = df_weights_find(w, "time_embedding.linear_1.weight");
    DF_FAIL_IF(!t || t->ndim != 2, DF_ERR_FORMAT, "%s: missing tensor "
               "'time_embedding.linear_1.weight'", src);
    c->time_embed_dim = (int)t->shape[0];
    c->time_proj_dim = (int)t->shape[1];
    DF_FAIL_IF(c->time_proj_dim != c->block_out[0], DF_ERR_UNSUPPORTED,
               "%s: time_embedding input %d != block_out_channels[0] %d", src, c->time_proj_dim,
               c->block_out[0]);
    t = df_weights_find(w, "add_embedding.linear_1.weight");
    if (t) {
        DF_FAIL_IF(t->ndim != 2, DF_ERR_SHAPE, "%s: add_embedding.linear_1.weight is not 2-D",
                   src);
        c->addition_embed = 1;
        c->add_in_dim = (int)t->shape[1];
        c->addition_time_embed_dim = yaml_outdim > 0 ? yaml_outdim : 256;
        c->text_embeds_dim = c->add_in_dim - c->n_time_ids * c->addition_time_embed_dim;
        DF_FAIL_IF(c->text_embeds_dim <= 0, DF_ERR_UNSUPPORTED,
                   "%s: add_embedding input %d cannot hold %d time ids x %d (give the SGM yaml "
                   "with the embedders' outdim)", src, c->add_in_dim, c->n_time_ids,
                   c->addition_time_embed_dim);
    }
    // Heads
    for (int i = 0; i < n; i++) {
        int C = c->block_out[i], h;
        if (yaml_head_ch > 0) h = C / yaml_head_ch;
        else if (yaml_heads > 0) h = yaml_heads;
        else if (!c->use_linear_projection) h = 8; // SD1.x
        else h = C / 64;                           // SD2.x / SDXL: head_dim 64
        c->heads_down[i] = h > 0 ? h : 1;
    }
    for (int i = 0; i < n; i++) c->heads_up[i] = c->heads_down[n - 1 - i];
    c->heads_mid = c->heads_down[n - 1];
    set_arch(c);
    return df_unet_config_validate(c);
}

// ---------------------------------------------------------------------------------------------
// Validation and description

df_status df_unet_config_validate(const df_unet_config *c) {
    const int n = c->n_levels, L = c->layers_per_block;
    DF_FAIL_IF(n < 1 || n > DF_UNET_MAX_LEVELS, DF_ERR_ARG, "UNet config: %d levels", n);
    DF_FAIL_IF(L < 1 || L + 1 > DF_UNET_MAX_LAYERS, DF_ERR_ARG,
               "UNet config: layers_per_block %d", L);
    DF_FAIL_IF(c->in_channels < 1 || c->out_channels < 1, DF_ERR_ARG,
               "UNet config: in/out channels %d/%d", c->in_channels, c->out_channels);
    DF_FAIL_IF(c->norm_groups < 1, DF_ERR_ARG, "UNet config: norm_num_groups %d", c->norm_groups);
    DF_FAIL_IF(c->time_proj_dim < 2 || c->time_proj_dim % 2 || c->time_embed_dim < 1,
               DF_ERR_UNSUPPORTED, "UNet config: time projection dim %d / embedding dim %d",
               c->time_proj_dim, c->time_embed_dim);
    for (int i = 0; i < n; i++) {
        int C = c->block_out[i];
        DF_FAIL_IF(C < 1 || C % c->norm_groups, DF_ERR_ARG,
                   "UNet config: block_out_channels[%d] = %d not divisible by norm_num_groups %d",
                   i, C, c->norm_groups);
        if (c->down_attn[i]) {
            DF_FAIL_IF(c->heads_down[i] < 1 || C % c->heads_down[i], DF_ERR_ARG,
                       "UNet config: down block %d: %d channels not divisible by %d heads", i, C,
                       c->heads_down[i]);
            for (int j = 0; j < L; j++)
                DF_FAIL_IF(c->tl_down[i][j] < 1, DF_ERR_ARG,
                           "UNet config: down block %d attention %d has %d transformer layers",
                           i, j, c->tl_down[i][j]);
        }
        int Cu = c->block_out[n - 1 - i];
        if (c->up_attn[i]) {
            DF_FAIL_IF(c->heads_up[i] < 1 || Cu % c->heads_up[i], DF_ERR_ARG,
                       "UNet config: up block %d: %d channels not divisible by %d heads", i, Cu,
                       c->heads_up[i]);
            for (int j = 0; j <= L; j++)
                DF_FAIL_IF(c->tl_up[i][j] < 1, DF_ERR_ARG,
                           "UNet config: up block %d attention %d has %d transformer layers", i,
                           j, c->tl_up[i][j]);
        }
    }
    if (c->mid_attn) {
        int C = c->block_out[n - 1];
        DF_FAIL_IF(c->heads_mid < 1 || C % c->heads_mid || c->tl_mid < 1, DF_ERR_ARG,
                   "UNet config: mid block: %d channels, %d heads, %d transformer layers", C,
                   c->heads_mid, c->tl_mid);
    }
    int any_attn = c->mid_attn;
    for (int i = 0; i < n; i++) any_attn |= c->down_attn[i] | c->up_attn[i];
    DF_FAIL_IF(any_attn && c->cross_attention_dim < 1, DF_ERR_ARG,
               "UNet config: cross_attention_dim %d", c->cross_attention_dim);
    if (c->addition_embed)
        DF_FAIL_IF(c->addition_time_embed_dim < 2 || c->addition_time_embed_dim % 2 ||
                       c->n_time_ids < 1 || c->text_embeds_dim < 1,
                   DF_ERR_ARG,
                   "UNet config: text_time embedding: %d inputs = %d pooled + %d ids x %d",
                   c->add_in_dim, c->text_embeds_dim, c->n_time_ids, c->addition_time_embed_dim);
    return DF_OK;
}

void df_unet_config_describe(const df_unet_config *c, char *buf, size_t cap) {
    size_t k = 0;
#define APPEND(...)                                                                            \
    do {                                                                                       \
        if (k < cap) {                                                                         \
            int m_ = snprintf(buf + k, cap - k, __VA_ARGS__);                                  \
            if (m_ > 0) k += (size_t)m_;                                                       \
        }                                                                                      \
    } while (0)
    APPEND("unet %s: channels", c->arch);
    for (int i = 0; i < c->n_levels; i++) APPEND("%s%d", i ? "/" : " ", c->block_out[i]);
    APPEND(", attn");
    for (int i = 0; i < c->n_levels; i++) APPEND("%s%d", i ? "/" : " ", c->down_attn[i]);
    APPEND(", heads");
    for (int i = 0; i < c->n_levels; i++) APPEND("%s%d", i ? "/" : " ", c->heads_down[i]);
    APPEND(", depth");
    for (int i = 0; i < c->n_levels; i++) APPEND("%s%d", i ? "/" : " ", c->tl_down[i][0]);
    APPEND(" mid %d, layers %d, ctx %d, %s proj, groups %d%s", c->tl_mid, c->layers_per_block,
           c->cross_attention_dim, c->use_linear_projection ? "linear" : "conv", c->norm_groups,
           c->addition_embed ? ", text_time" : "");
#undef APPEND
}
