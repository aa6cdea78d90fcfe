// CLIP text encoders and SD 1.x / SDXL prompt encoding (see clip.h; spec sdxl.md §5.1-5.2).
#include "model/clip.h"

#include "core/textfile.h"
#include "io/json_util.h"
#include "kernels/kernels.h"

#include <cblas.h>
#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Configuration

// transformers CLIPTextConfig defaults for keys a config.json may omit.
static void config_defaults(df_clip_config *c) {
    memset(c, 0, sizeof *c);
    c->hidden = 512;
    c->intermediate = 2048;
    c->layers = 12;
    c->heads = 8;
    c->max_positions = 77;
    c->vocab = 49408;
    c->projection_dim = 512;
    c->has_projection = -1;
    c->act = DF_CLIP_ACT_QUICK_GELU;
    c->eps = 1e-5f;
}

void df_clip_config_clip_l(df_clip_config *cfg) {
    config_defaults(cfg);
    cfg->hidden = 768;
    cfg->intermediate = 3072;
    cfg->layers = 12;
    cfg->heads = 12;
    cfg->projection_dim = 768;
    cfg->has_projection = 0;
    cfg->act = DF_CLIP_ACT_QUICK_GELU;
}

void df_clip_config_bigg(df_clip_config *cfg) {
    config_defaults(cfg);
    cfg->hidden = 1280;
    cfg->intermediate = 5120;
    cfg->layers = 32;
    cfg->heads = 20;
    cfg->projection_dim = 1280;
    cfg->has_projection = 1;
    cfg->act = DF_CLIP_ACT_GELU;
}

#define CLIP_INT_MAX 100000000 // sanity bound of the integer fields

static df_status parse_root(const cJSON *root, const char *label, df_clip_config *c) {
    DF_TRY(df_json_int(root, label, "hidden_size", 1, CLIP_INT_MAX, &c->hidden));
    DF_TRY(df_json_int(root, label, "intermediate_size", 1, CLIP_INT_MAX, &c->intermediate));
    DF_TRY(df_json_int(root, label, "num_hidden_layers", 1, CLIP_INT_MAX, &c->layers));
    DF_TRY(df_json_int(root, label, "num_attention_heads", 1, CLIP_INT_MAX, &c->heads));
    DF_TRY(df_json_int(root, label, "max_position_embeddings", 1, CLIP_INT_MAX,
                       &c->max_positions));
    DF_TRY(df_json_int(root, label, "vocab_size", 1, CLIP_INT_MAX, &c->vocab));
    DF_TRY(df_json_int(root, label, "projection_dim", 1, CLIP_INT_MAX, &c->projection_dim));
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act) {
        if (cJSON_IsString(act) && strcmp(act->valuestring, "quick_gelu") == 0)
            c->act = DF_CLIP_ACT_QUICK_GELU;
        else if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu") == 0)
            c->act = DF_CLIP_ACT_GELU;
        else
            return DF_ERROR(DF_ERR_UNSUPPORTED, "%s: hidden_act %s is not supported "
                            "(quick_gelu, gelu)", label,
                            cJSON_IsString(act) ? act->valuestring : "(not a string)");
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    if (eps) {
        DF_FAIL_IF(!cJSON_IsNumber(eps) || !(eps->valuedouble > 0) || eps->valuedouble > 1,
                   DF_ERR_FORMAT, "%s: layer_norm_eps must be a number in (0, 1]", label);
        c->eps = (float)eps->valuedouble;
    }
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (cJSON_IsArray(arch) && cJSON_GetArraySize(arch) > 0) {
        const cJSON *a0 = cJSON_GetArrayItem(arch, 0);
        if (cJSON_IsString(a0) && strcmp(a0->valuestring, "CLIPTextModelWithProjection") == 0)
            c->has_projection = 1;
        else if (cJSON_IsString(a0) && strcmp(a0->valuestring, "CLIPTextModel") == 0)
            c->has_projection = 0;
        else
            return DF_ERROR(DF_ERR_UNSUPPORTED, "%s: architecture %s is not a CLIP text model",
                            label, cJSON_IsString(a0) ? a0->valuestring : "(not a string)");
    }
    DF_FAIL_IF(c->hidden % c->heads != 0, DF_ERR_FORMAT,
               "%s: hidden_size %d is not divisible by num_attention_heads %d", label, c->hidden,
               c->heads);
    return DF_OK;
}

df_status df_clip_config_parse(const char *json, const char *label, df_clip_config *cfg) {
    DF_FAIL_IF(!json || !cfg, DF_ERR_ARG, "NULL argument");
    df_clip_config c;
    config_defaults(&c);
    cJSON *root;
    DF_TRY(df_json_parse_object(json, label, &root));
    df_status st = parse_root(root, label, &c);
    cJSON_Delete(root);
    if (st == DF_OK) *cfg = c;
    return st;
}

df_status df_clip_config_load(const char *path, df_clip_config *cfg) {
    DF_FAIL_IF(!path || !cfg, DF_ERR_ARG, "NULL argument");
    char *text;
    DF_TRY(df_read_text_file(path, (size_t)16 << 20, 0, &text, NULL));
    df_status st = df_clip_config_parse(text, path, cfg);
    free(text);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Model

typedef struct clip_layer {
    const df_st_tensor *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    const df_st_tensor *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} clip_layer;

struct df_clip {
    df_clip_config cfg;
    df_weights *w;
    int owns_weights;
    const df_st_tensor *tok, *pos, *fln_w, *fln_b, *proj; // proj NULL without projection
    clip_layer *layer;                                    // [N]
};

// Looks up "text_model.<name>" or, failing that, "<name>" (transformers >= 5.6 layout) and checks
// its shape. The error names the text_model. form.
static df_status get_tm(df_weights *w, const char *name, int ndim, const int64_t *shape,
                        const df_st_tensor **out) {
    char full[256];
    int n = snprintf(full, sizeof full, "text_model.%s", name);
    DF_FAIL_IF(n < 0 || (size_t)n >= sizeof full, DF_ERR_INTERNAL, "name too long: %s", name);
    if (!df_weights_find(w, full) && df_weights_find(w, name))
        return df_weights_get(w, name, ndim, shape, out);
    return df_weights_get(w, full, ndim, shape, out);
}

static df_status get_vec(df_weights *w, const char *name, int64_t n, const df_st_tensor **out) {
    const int64_t s[1] = {n};
    return get_tm(w, name, 1, s, out);
}

static df_status get_mat(df_weights *w, const char *name, int64_t r, int64_t c,
                         const df_st_tensor **out) {
    const int64_t s[2] = {r, c};
    return get_tm(w, name, 2, s, out);
}

static df_status bind_layer(df_clip *m, int i) {
    const int64_t D = m->cfg.hidden, F = m->cfg.intermediate;
    clip_layer *L = &m->layer[i];
    char p[128], n[192];
    snprintf(p, sizeof p, "encoder.layers.%d.", i);
#define DF_CLIP_VEC(field, suffix, len)                                                       \
    do {                                                                                      \
        snprintf(n, sizeof n, "%s%s", p, suffix);                                             \
        DF_TRY(get_vec(m->w, n, len, &L->field));                                             \
    } while (0)
#define DF_CLIP_MAT(field, suffix, r, c)                                                      \
    do {                                                                                      \
        snprintf(n, sizeof n, "%s%s", p, suffix);                                             \
        DF_TRY(get_mat(m->w, n, r, c, &L->field));                                            \
    } while (0)
    DF_CLIP_VEC(ln1_w, "layer_norm1.weight", D);
    DF_CLIP_VEC(ln1_b, "layer_norm1.bias", D);
    DF_CLIP_MAT(q_w, "self_attn.q_proj.weight", D, D);
    DF_CLIP_VEC(q_b, "self_attn.q_proj.bias", D);
    DF_CLIP_MAT(k_w, "self_attn.k_proj.weight", D, D);
    DF_CLIP_VEC(k_b, "self_attn.k_proj.bias", D);
    DF_CLIP_MAT(v_w, "self_attn.v_proj.weight", D, D);
    DF_CLIP_VEC(v_b, "self_attn.v_proj.bias", D);
    DF_CLIP_MAT(o_w, "self_attn.out_proj.weight", D, D);
    DF_CLIP_VEC(o_b, "self_attn.out_proj.bias", D);
    DF_CLIP_VEC(ln2_w, "layer_norm2.weight", D);
    DF_CLIP_VEC(ln2_b, "layer_norm2.bias", D);
    DF_CLIP_MAT(fc1_w, "mlp.fc1.weight", F, D);
    DF_CLIP_VEC(fc1_b, "mlp.fc1.bias", F);
    DF_CLIP_MAT(fc2_w, "mlp.fc2.weight", D, F);
    DF_CLIP_VEC(fc2_b, "mlp.fc2.bias", D);
#undef DF_CLIP_VEC
#undef DF_CLIP_MAT
    return DF_OK;
}

static df_status bind_all(df_clip *m) {
    const df_clip_config *c = &m->cfg;
    DF_TRY(get_mat(m->w, "embeddings.token_embedding.weight", c->vocab, c->hidden, &m->tok));
    DF_TRY(get_mat(m->w, "embeddings.position_embedding.weight", c->max_positions, c->hidden,
                   &m->pos));
    for (int i = 0; i < c->layers; i++) DF_TRY(bind_layer(m, i));
    DF_TRY(get_vec(m->w, "final_layer_norm.weight", c->hidden, &m->fln_w));
    DF_TRY(get_vec(m->w, "final_layer_norm.bias", c->hidden, &m->fln_b));
    if (m->cfg.has_projection < 0) m->cfg.has_projection =
        df_weights_find(m->w, "text_projection.weight") != NULL;
    if (m->cfg.has_projection) {
        const int64_t s[2] = {c->projection_dim, c->hidden};
        DF_TRY(df_weights_get(m->w, "text_projection.weight", 2, s, &m->proj));
    }
    return DF_OK;
}

df_status df_clip_create(const df_clip_config *cfg, df_weights *w, df_clip **out) {
    DF_FAIL_IF(!cfg || !w || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    DF_FAIL_IF(cfg->hidden < 1 || cfg->heads < 1 || cfg->hidden % cfg->heads != 0 ||
                   cfg->intermediate < 1 || cfg->layers < 1 || cfg->max_positions < 1 ||
                   cfg->vocab < 1 || !(cfg->eps > 0),
               DF_ERR_ARG, "invalid CLIP config (hidden %d, heads %d, intermediate %d, "
               "layers %d, positions %d, vocab %d)", cfg->hidden, cfg->heads, cfg->intermediate,
               cfg->layers, cfg->max_positions, cfg->vocab);
    DF_FAIL_IF(cfg->has_projection > 0 && cfg->projection_dim < 1, DF_ERR_ARG,
               "invalid projection_dim %d", cfg->projection_dim);
    df_clip *m = calloc(1, sizeof *m);
    DF_FAIL_IF(!m, DF_ERR_NOMEM, "CLIP model");
    m->cfg = *cfg;
    m->w = w;
    m->layer = calloc((size_t)cfg->layers, sizeof *m->layer);
    if (!m->layer) {
        free(m);
        return DF_ERROR(DF_ERR_NOMEM, "CLIP layers");
    }
    df_status st = bind_all(m);
    if (st != DF_OK) {
        df_clip_destroy(m);
        return st;
    }
    *out = m;
    return DF_OK;
}

df_status df_clip_load(const char *model_dir, const char *component, df_clip **out) {
    DF_FAIL_IF(!model_dir || !component || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s/config.json", model_dir, component);
    DF_FAIL_IF(n < 0 || (size_t)n >= sizeof path, DF_ERR_ARG, "path too long");
    df_clip_config cfg;
    DF_TRY(df_clip_config_load(path, &cfg));
    df_weights *w = NULL;
    DF_TRY(df_weights_open_dir(model_dir, component, &w));
    df_clip *m = NULL;
    df_status st = df_clip_create(&cfg, w, &m);
    if (st != DF_OK) {
        df_weights_destroy(w);
        return st;
    }
    m->owns_weights = 1;
    *out = m;
    return DF_OK;
}

void df_clip_destroy(df_clip *m) {
    if (!m) return;
    if (m->owns_weights) df_weights_destroy(m->w);
    free(m->layer);
    free(m);
}

const df_clip_config *df_clip_get_config(const df_clip *m) {
    return m ? &m->cfg : NULL;
}

int df_clip_pool_index(const int32_t *ids, int T) {
    int best = 0;
    for (int t = 1; t < T; t++)
        if (ids[t] > ids[best]) best = t;
    return best;
}

// ---------------------------------------------------------------------------------------------
// Causal attention

void df_clip_causal_attention_ref(float *out, const float *q, const float *k, const float *v,
                                  int T, int NH, int HS, float scale, float *scratch) {
    const int D = NH * HS;
    for (int h = 0; h < NH; h++) {
        for (int i = 0; i < T; i++) {
            float *p = scratch + (size_t)i * T; // [T] probabilities of row i
            double mx = -INFINITY;
            for (int j = 0; j <= i; j++) {
                double s = 0.0;
                for (int d = 0; d < HS; d++)
                    s += (double)q[(size_t)i * D + h * HS + d] * k[(size_t)j * D + h * HS + d];
                s *= scale;
                p[j] = (float)s;
                if (s > mx) mx = s;
            }
            double sum = 0.0;
            for (int j = 0; j <= i; j++) sum += exp((double)p[j] - mx);
            for (int d = 0; d < HS; d++) {
                double acc = 0.0;
                for (int j = 0; j <= i; j++)
                    acc += exp((double)p[j] - mx) / sum * v[(size_t)j * D + h * HS + d];
                out[(size_t)i * D + h * HS + d] = (float)acc;
            }
        }
    }
}

void df_clip_causal_attention(float *out, const float *q, const float *k, const float *v, int T,
                              int NH, int HS, float scale, float *scratch) {
    const int D = NH * HS;
    float *S = scratch; // [T][T] scores, then probabilities
    for (int h = 0; h < NH; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, HS, scale, q + h * HS, D,
                    k + h * HS, D, 0.0f, S, T);
        for (int i = 0; i < T; i++) {
            float *r = S + (size_t)i * T;
            float mx = r[0];
            for (int j = 1; j <= i; j++) mx = r[j] > mx ? r[j] : mx;
            float sum = 0.0f;
            for (int j = 0; j <= i; j++) {
                r[j] = expf(r[j] - mx);
                sum += r[j];
            }
            const float inv = 1.0f / sum;
            for (int j = 0; j <= i; j++) r[j] *= inv;
            for (int j = i + 1; j < T; j++) r[j] = 0.0f; // masked (future) keys
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, HS, T, 1.0f, S, T, v + h * HS,
                    D, 0.0f, out + h * HS, D);
    }
}

// ---------------------------------------------------------------------------------------------
// Forward

// f32 copies of one layer's weights (a single allocation, carved up).
typedef struct layer_f32 {
    float *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    float *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} layer_f32;

static size_t layer_floats(int D, int F) {
    return 4 * (size_t)D * D + 2 * (size_t)D * F + 9 * (size_t)D + (size_t)F + 16 * 16;
}

static float *carve(float **p, size_t n) {
    float *r = *p;
    *p += (n + 15) & ~(size_t)15; // keep 64-byte alignment
    return r;
}

static void cvt(float *dst, const df_st_tensor *t) {
    df_convert_to_f32(dst, t->data, t->dtype, t->numel);
}

static void load_layer(layer_f32 *f, float *buf, const clip_layer *L, int D, int F) {
    float *p = buf;
    f->ln1_w = carve(&p, D), f->ln1_b = carve(&p, D);
    f->q_w = carve(&p, (size_t)D * D), f->q_b = carve(&p, D);
    f->k_w = carve(&p, (size_t)D * D), f->k_b = carve(&p, D);
    f->v_w = carve(&p, (size_t)D * D), f->v_b = carve(&p, D);
    f->o_w = carve(&p, (size_t)D * D), f->o_b = carve(&p, D);
    f->ln2_w = carve(&p, D), f->ln2_b = carve(&p, D);
    f->fc1_w = carve(&p, (size_t)F * D), f->fc1_b = carve(&p, F);
    f->fc2_w = carve(&p, (size_t)D * F), f->fc2_b = carve(&p, D);
    cvt(f->ln1_w, L->ln1_w), cvt(f->ln1_b, L->ln1_b);
    cvt(f->q_w, L->q_w), cvt(f->q_b, L->q_b);
    cvt(f->k_w, L->k_w), cvt(f->k_b, L->k_b);
    cvt(f->v_w, L->v_w), cvt(f->v_b, L->v_b);
    cvt(f->o_w, L->o_w), cvt(f->o_b, L->o_b);
    cvt(f->ln2_w, L->ln2_w), cvt(f->ln2_b, L->ln2_b);
    cvt(f->fc1_w, L->fc1_w), cvt(f->fc1_b, L->fc1_b);
    cvt(f->fc2_w, L->fc2_w), cvt(f->fc2_b, L->fc2_b);
}

// Activation scratch of one forward.
typedef struct clip_act {
    float *h, *q, *k, *v, *a; // [T][D] each
    float *mlp;               // [T][F]
    float *scores;            // [T][T]
} clip_act;

// x [T][D] += attention(LN1(x)); x += MLP(LN2(x)).
static void run_layer(const df_clip *m, const layer_f32 *f, float *x, const clip_act *s, int T) {
    const int D = m->cfg.hidden, F = m->cfg.intermediate, NH = m->cfg.heads, HS = D / NH;
    const float eps = m->cfg.eps;
    df_layer_norm(s->h, x, f->ln1_w, f->ln1_b, T, D, eps);
    df_linear(s->q, s->h, f->q_w, f->q_b, T, D, D, 0);
    df_linear(s->k, s->h, f->k_w, f->k_b, T, D, D, 0);
    df_linear(s->v, s->h, f->v_w, f->v_b, T, D, D, 0);
    // transformers scales the projected queries before Q K^T (q_proj(h) * head_dim^-0.5)
    const float scale = 1.0f / sqrtf((float)HS);
    for (size_t i = 0; i < (size_t)T * D; i++) s->q[i] *= scale;
    df_clip_causal_attention(s->a, s->q, s->k, s->v, T, NH, HS, 1.0f, s->scores);
    df_linear(x, s->a, f->o_w, f->o_b, T, D, D, 1);
    df_layer_norm(s->h, x, f->ln2_w, f->ln2_b, T, D, eps);
    df_linear(s->mlp, s->h, f->fc1_w, f->fc1_b, T, D, F, 0);
    if (m->cfg.act == DF_CLIP_ACT_GELU) df_gelu(s->mlp, s->mlp, (size_t)T * F);
    else df_quick_gelu(s->mlp, s->mlp, (size_t)T * F);
    df_linear(x, s->mlp, f->fc2_w, f->fc2_b, T, F, D, 1);
}

// Final LayerNorm of x [T][D] into y (f32 copies of the affine parameters in g, b).
static void final_ln(const df_clip *m, float *y, const float *x, int T, float *g, float *b) {
    cvt(g, m->fln_w);
    cvt(b, m->fln_b);
    df_layer_norm(y, x, g, b, T, m->cfg.hidden, m->cfg.eps);
}

df_status df_clip_forward(df_clip *m, const int32_t *ids, int T, const df_clip_outputs *o) {
    DF_FAIL_IF(!m || !ids || !o, DF_ERR_ARG, "NULL argument");
    const df_clip_config *c = &m->cfg;
    const int D = c->hidden, F = c->intermediate, N = c->layers;
    DF_FAIL_IF(T < 1 || T > c->max_positions, DF_ERR_ARG,
               "sequence length %d outside [1, %d]", T, c->max_positions);
    for (int t = 0; t < T; t++)
        DF_FAIL_IF(ids[t] < 0 || ids[t] >= c->vocab, DF_ERR_ARG,
                   "token id %d at position %d outside the vocabulary [0, %d)", (int)ids[t], t,
                   c->vocab);
    DF_FAIL_IF(o->text_embeds && !m->proj, DF_ERR_ARG,
               "text_embeds requested from a model without text_projection");

    // Which layer outputs are needed.
    const int want_final = o->hidden_states || o->last_hidden_state || o->pooled || o->text_embeds;
    int sel = -1;
    if (o->hidden) {
        sel = o->hidden_index < 0 ? N + 1 + o->hidden_index : o->hidden_index;
        DF_FAIL_IF(sel < 0 || sel > N, DF_ERR_ARG,
                   "hidden_index %d outside the %d hidden states", o->hidden_index, N + 1);
    }
    const int top = want_final ? N : (sel > 0 ? sel : 0);

    // Scratch: x, activations, layer weights, final-LN output and parameters.
    const size_t TD = (size_t)T * D;
    const size_t r16 = 16;
    const size_t act_floats = 7 * (TD + r16) + (size_t)T * F + r16 + (size_t)T * T + r16 +
                              2 * ((size_t)D + r16);
    float *act = df_malloc(act_floats * sizeof(float));
    float *wbuf = top > 0 ? df_malloc(layer_floats(D, F) * sizeof(float)) : NULL;
    if (!act || (top > 0 && !wbuf)) {
        df_free(act);
        df_free(wbuf);
        return DF_ERROR(DF_ERR_NOMEM, "CLIP forward scratch (T %d, D %d, F %d)", T, D, F);
    }
    float *p = act;
    float *x = carve(&p, TD);    // [T][D] residual stream
    float *last = carve(&p, TD); // [T][D] final-LN output
    clip_act s;
    s.h = carve(&p, TD), s.q = carve(&p, TD), s.k = carve(&p, TD), s.v = carve(&p, TD);
    s.a = carve(&p, TD);
    s.mlp = carve(&p, (size_t)T * F);
    s.scores = carve(&p, (size_t)T * T);
    float *lg = carve(&p, D), *lb = carve(&p, D);

    // Embeddings: gather the token rows, add the position rows.
    const size_t tes = df_dtype_size(m->tok->dtype), pes = df_dtype_size(m->pos->dtype);
    for (int t = 0; t < T; t++) {
        float *xr = x + (size_t)t * D;
        df_convert_to_f32(xr, (const char *)m->tok->data + (size_t)ids[t] * D * tes,
                          m->tok->dtype, D);
        df_convert_to_f32(s.h, (const char *)m->pos->data + (size_t)t * D * pes, m->pos->dtype,
                          D);
        for (int d = 0; d < D; d++) xr[d] += s.h[d];
    }

    for (int l = 0; l <= top; l++) {
        if (l > 0) {
            layer_f32 f;
            load_layer(&f, wbuf, &m->layer[l - 1], D, F);
            run_layer(m, &f, x, &s, T);
        }
        // x is hidden_states[l]
        if (o->hidden_states) memcpy(o->hidden_states + (size_t)l * TD, x, TD * sizeof(float));
        if (l == sel) {
            if (o->hidden_final_ln) final_ln(m, o->hidden, x, T, lg, lb);
            else memcpy(o->hidden, x, TD * sizeof(float));
        }
    }

    if (want_final) {
        float *lh = o->last_hidden_state ? o->last_hidden_state : last;
        final_ln(m, lh, x, T, lg, lb);
        const float *pooled = lh + (size_t)df_clip_pool_index(ids, T) * D;
        if (o->pooled) memcpy(o->pooled, pooled, (size_t)D * sizeof(float));
        if (o->text_embeds) {
            // text_projection.weight [P][D] (no bias); reuse the weight scratch
            const int P = c->projection_dim;
            float *pw = wbuf ? wbuf : NULL;
            float *own = NULL;
            if (!pw || layer_floats(D, F) < (size_t)P * D) {
                own = df_malloc((size_t)P * D * sizeof(float));
                if (!own) {
                    df_free(act);
                    df_free(wbuf);
                    return DF_ERROR(DF_ERR_NOMEM, "text_projection scratch");
                }
                pw = own;
            }
            cvt(pw, m->proj);
            df_linear(o->text_embeds, pooled, pw, NULL, 1, D, P, 0);
            df_free(own);
        }
    }
    df_free(act);
    df_free(wbuf);
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Prompt encoding

df_status df_sdxl_encode(df_clip *te1, df_clip *te2, const int32_t *ids1, const int32_t *ids2,
                         int clip_skip, float *embeds, float *pooled) {
    DF_FAIL_IF(!te2 || !ids2 || !embeds || (te1 && !ids1), DF_ERR_ARG, "NULL argument");
    DF_FAIL_IF(clip_skip < 0, DF_ERR_ARG, "clip_skip %d < 0", clip_skip);
    DF_FAIL_IF(pooled && !te2->proj, DF_ERR_ARG, "text_encoder_2 has no text_projection");
    const int T = DF_CLIP_TOKENS;
    const int D1 = te1 ? te1->cfg.hidden : 0, D2 = te2->cfg.hidden, DC = D1 + D2;
    float *tmp = df_malloc((size_t)T * (D1 > D2 ? D1 : D2) * sizeof(float)); // [T][max(D1,D2)]
    DF_FAIL_IF(!tmp, DF_ERR_NOMEM, "SDXL prompt scratch");
    df_status st = DF_OK;
    df_clip_outputs o;
    if (te1) {
        memset(&o, 0, sizeof o);
        o.hidden = tmp;
        o.hidden_index = -(clip_skip + 2);
        if ((st = df_clip_forward(te1, ids1, T, &o)) != DF_OK) goto done;
        for (int t = 0; t < T; t++)
            memcpy(embeds + (size_t)t * DC, tmp + (size_t)t * D1, (size_t)D1 * sizeof(float));
    }
    memset(&o, 0, sizeof o);
    o.hidden = tmp;
    o.hidden_index = -(clip_skip + 2);
    o.text_embeds = pooled;
    if ((st = df_clip_forward(te2, ids2, T, &o)) != DF_OK) goto done;
    for (int t = 0; t < T; t++)
        memcpy(embeds + (size_t)t * DC + D1, tmp + (size_t)t * D2, (size_t)D2 * sizeof(float));
done:
    df_free(tmp);
    return st;
}

df_status df_sdxl_encode_prompt(df_clip *te1, df_clip *te2, const int32_t *ids1,
                                const int32_t *ids2, const int32_t *neg_ids1,
                                const int32_t *neg_ids2, int force_zeros_for_empty_prompt,
                                int clip_skip, float *embeds, float *pooled, float *neg_embeds,
                                float *neg_pooled) {
    DF_TRY(df_sdxl_encode(te1, te2, ids1, ids2, clip_skip, embeds, pooled));
    if (!neg_embeds && !neg_pooled) return DF_OK;
    const int T = DF_CLIP_TOKENS;
    const int DC = (te1 ? te1->cfg.hidden : 0) + te2->cfg.hidden;
    if (!neg_ids2 && (!te1 || !neg_ids1)) {
        // negative_prompt None
        DF_FAIL_IF(!force_zeros_for_empty_prompt, DF_ERR_ARG,
                   "negative_prompt None without force_zeros_for_empty_prompt encodes \"\": "
                   "pass the token ids of the empty prompt");
        if (neg_embeds) memset(neg_embeds, 0, (size_t)T * DC * sizeof(float));
        if (neg_pooled) memset(neg_pooled, 0, (size_t)te2->cfg.projection_dim * sizeof(float));
        return DF_OK;
    }
    DF_FAIL_IF(!neg_ids2 || (te1 && !neg_ids1), DF_ERR_ARG,
               "negative token ids given for only one of the two tokenizers");
    float *ne = neg_embeds;
    float *own = NULL;
    if (!ne) {
        own = df_malloc((size_t)T * DC * sizeof(float));
        DF_FAIL_IF(!own, DF_ERR_NOMEM, "negative prompt scratch");
        ne = own;
    }
    // diffusers 0.24 ignores clip_skip for the negative prompt (always hidden_states[-2])
    df_status st = df_sdxl_encode(te1, te2, neg_ids1, neg_ids2, 0, ne, neg_pooled);
    df_free(own);
    return st;
}

df_status df_sd15_encode_prompt(df_clip *te, const int32_t *ids, const int32_t *neg_ids,
                                int clip_skip, float *embeds, float *neg_embeds) {
    DF_FAIL_IF(!te || !ids || !embeds, DF_ERR_ARG, "NULL argument");
    DF_FAIL_IF(clip_skip < 0, DF_ERR_ARG, "clip_skip %d < 0", clip_skip);
    DF_FAIL_IF(neg_embeds && !neg_ids, DF_ERR_ARG,
               "negative token ids required (negative_prompt None is encoded as \"\")");
    df_clip_outputs o;
    memset(&o, 0, sizeof o);
    if (clip_skip > 0) {
        o.hidden = embeds;
        o.hidden_index = -(clip_skip + 1);
        o.hidden_final_ln = 1;
    } else {
        o.last_hidden_state = embeds;
    }
    DF_TRY(df_clip_forward(te, ids, DF_CLIP_TOKENS, &o));
    if (!neg_embeds) return DF_OK;
    memset(&o, 0, sizeof o);
    o.last_hidden_state = neg_embeds;
    return df_clip_forward(te, neg_ids, DF_CLIP_TOKENS, &o);
}

size_t df_clip_release_weight_pages(df_clip *m) {
    return m ? df_weights_release_pages(m->w) : 0;
}
