// CLIP text encoders and prompt encoding against the golden data (sdxl/, sd15/ text_encoders and
// encode_prompt cases; tiny-sdxl F16, tiny-sd15 F32, tiny-sd15-single LDM checkpoint), the
// causal attention against its _ref twin, the single-file name mapping against the fixture's
// mapping json, and the error paths.
#include "df_golden.h"

#include "io/safetensors.h"
#include "model/clip.h"
#include "model/weights.h"
#include "text/tokenizer.h"

#include <cjson/cJSON.h>

#include <unistd.h>

#define TOL_REL 1e-5
#define TOL_ABS 1e-4

static const int32_t *ids_of(const df_st_file *f, const char *name, int row) {
    const df_st_tensor *t = df_st_find(f, name);
    if (!t || t->dtype != DF_DTYPE_I32) {
        fprintf(stderr, "golden ids %s missing\n", name);
        exit(1);
    }
    return (const int32_t *)t->data + (size_t)row * DF_CLIP_TOKENS; // aligned: 4-byte dtype
}

static void compare(const float *got, const float *want, size_t n, const char *label) {
    dfg_compare(got, want, n, TOL_REL, TOL_ABS, label);
}

// ---------------------------------------------------------------------------------------------
// Raw encoder outputs (text_encoders.safetensors): prefix "te1"/"te2".

static void check_encoder(df_clip *m, const df_st_file *g, const char *te, const char *what) {
    const df_clip_config *c = df_clip_get_config(m);
    const int T = DF_CLIP_TOKENS, D = c->hidden, N = c->layers;
    char name[128];
    snprintf(name, sizeof name, "in.%s.input_ids", te);
    const int B = (int)df_st_find(g, name)->shape[0];
    const df_st_tensor *th, *tl, *tp;
    snprintf(name, sizeof name, "out.%s.hidden_states", te);
    float *hs_want = dfg_need_f32(g, name, &th); // [N+1][B][T][D]
    snprintf(name, sizeof name, "out.%s.last_hidden_state", te);
    float *lh_want = dfg_need_f32(g, name, &tl); // [B][T][D]
    const int proj = c->has_projection;
    snprintf(name, sizeof name, proj ? "out.%s.text_embeds" : "out.%s.pooler_output", te);
    float *p_want = dfg_need_f32(g, name, &tp); // [B][P or D]
    const size_t nh = th->numel, nl = tl->numel, np = tp->numel;
    EXPECT_EQ_I64(nh, (size_t)(N + 1) * B * T * D);
    const int PD = proj ? c->projection_dim : D;
    float *hs = calloc(nh, sizeof(float)), *lh = calloc(nl, sizeof(float));
    float *pp = calloc(np, sizeof(float)), *tmp = malloc((size_t)(N + 1) * T * D * sizeof(float));
    for (int b = 0; b < B; b++) {
        snprintf(name, sizeof name, "in.%s.input_ids", te);
        df_clip_outputs o = {0};
        o.hidden_states = tmp;
        o.last_hidden_state = lh + (size_t)b * T * D;
        if (proj) o.text_embeds = pp + (size_t)b * PD;
        else o.pooled = pp + (size_t)b * PD;
        EXPECT_OK(df_clip_forward(m, ids_of(g, name, b), T, &o));
        for (int k = 0; k <= N; k++)
            memcpy(hs + ((size_t)k * B + b) * T * D, tmp + (size_t)k * T * D,
                   (size_t)T * D * sizeof(float));
    }
    char label[160];
    snprintf(label, sizeof label, "%s %s hidden_states", what, te);
    compare(hs, hs_want, nh, label);
    snprintf(label, sizeof label, "%s %s last_hidden_state", what, te);
    compare(lh, lh_want, nl, label);
    snprintf(label, sizeof label, "%s %s %s", what, te, proj ? "text_embeds" : "pooler_output");
    compare(pp, p_want, np, label);

    // A single selected hidden state (stopping early) equals the stacked one.
    snprintf(name, sizeof name, "in.%s.input_ids", te);
    df_clip_outputs o = {0};
    o.hidden = tmp;
    o.hidden_index = -2;
    EXPECT_OK(df_clip_forward(m, ids_of(g, name, 0), T, &o));
    EXPECT_TRUE(memcmp(tmp, hs + ((size_t)(N - 1) * B) * T * D, (size_t)T * D * 4) == 0);
    free(hs), free(lh), free(pp), free(tmp), free(hs_want), free(lh_want), free(p_want);
}

// ---------------------------------------------------------------------------------------------
// encode_prompt

typedef struct prompt_case {
    const char *name;
    const char *prompt, *prompt_2;   // prompt_2 NULL = defaults to prompt
    const char *negative;            // NULL = None
    int clip_skip;
} prompt_case;

static const char *ASTRO = "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k";

static void tokenize(const df_tokenizer *tok, const char *text, int32_t *ids) {
    int32_t mask[DF_TOK_CTX];
    if (df_tokenizer_encode(tok, text, ids, mask, NULL) != DF_OK) {
        fprintf(stderr, "tokenizer: %s\n", df_last_error());
        exit(1);
    }
}

static void check_sdxl_prompts(df_clip *te1, df_clip *te2, const df_tokenizer *tok1,
                               const df_tokenizer *tok2) {
    const df_st_file *g = NULL;
    df_st_file *gf;
    EXPECT_OK(df_st_open(dfg_path("sdxl/encode_prompt.safetensors"), &gf));
    if (!gf) return;
    g = gf;
    static const prompt_case cases[] = {
        {"default_negative_none", NULL, NULL, NULL, 0},
        {"negative_empty_string", NULL, NULL, "", 0},
        {"negative_text", NULL, NULL, "blurry, low quality", 0},
        {"prompt_2", NULL, "a watercolor painting", NULL, 0},
        {"clip_skip_1", NULL, NULL, NULL, 1},
        {"empty_prompt", "", NULL, NULL, 0},
    };
    const int T = DF_CLIP_TOKENS;
    const int DC = df_clip_get_config(te1)->hidden + df_clip_get_config(te2)->hidden;
    const int P = df_clip_get_config(te2)->projection_dim;
    float *e = malloc((size_t)T * DC * 4), *ne = malloc((size_t)T * DC * 4);
    float *p = malloc((size_t)P * 4), *np = malloc((size_t)P * 4);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const prompt_case *pc = &cases[i];
        const char *prompt = pc->prompt ? pc->prompt : ASTRO;
        int32_t ids1[77], ids2[77], nid1[77], nid2[77];
        tokenize(tok1, prompt, ids1);
        tokenize(tok2, pc->prompt_2 ? pc->prompt_2 : prompt, ids2);
        if (pc->negative) {
            tokenize(tok1, pc->negative, nid1);
            tokenize(tok2, pc->negative, nid2);
        }
        EXPECT_OK(df_sdxl_encode_prompt(te1, te2, ids1, ids2, pc->negative ? nid1 : NULL,
                                        pc->negative ? nid2 : NULL, 1, pc->clip_skip, e, p, ne,
                                        np));
        char name[128], label[128];
        static const char *const outs[4] = {"prompt_embeds", "negative_prompt_embeds",
                                            "pooled_prompt_embeds",
                                            "negative_pooled_prompt_embeds"};
        const float *got[4] = {e, ne, p, np};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "%s.out.%s", pc->name, outs[k]);
            const df_st_tensor *t;
            float *want = dfg_need_f32(g, name, &t);
            const size_t n = t->numel;
            EXPECT_EQ_I64(n, k < 2 ? (size_t)T * DC : (size_t)P);
            snprintf(label, sizeof label, "sdxl %s %s", pc->name, outs[k]);
            compare(got[k], want, n, label);
            free(want);
        }
    }
    // negative None without force_zeros: the pipeline encodes "", the caller must pass its ids
    int32_t ids1[77], ids2[77];
    tokenize(tok1, ASTRO, ids1);
    tokenize(tok2, ASTRO, ids2);
    EXPECT_ERR(df_sdxl_encode_prompt(te1, te2, ids1, ids2, NULL, NULL, 0, 0, e, p, ne, np),
               DF_ERR_ARG, "force_zeros_for_empty_prompt");
    // no CFG: the negative outputs are not touched
    ne[0] = 12345.0f;
    EXPECT_OK(df_sdxl_encode_prompt(te1, te2, ids1, ids2, NULL, NULL, 1, 0, e, p, NULL, NULL));
    EXPECT_TRUE(ne[0] == 12345.0f);
    free(e), free(ne), free(p), free(np);
    df_st_close(gf);
}

static void check_sd15_prompts(df_clip *te, const df_tokenizer *tok, const char *what) {
    df_st_file *g;
    EXPECT_OK(df_st_open(dfg_path("sd15/encode_prompt.safetensors"), &g));
    if (!g) return;
    static const prompt_case cases[] = {
        {"default_negative_none", NULL, NULL, "", 0}, // None is encoded as ""
        {"negative_text", NULL, NULL, "blurry, low quality", 0},
        {"clip_skip_1", NULL, NULL, "", 1},
        {"empty_prompt", "", NULL, "", 0},
    };
    const int T = DF_CLIP_TOKENS, D = df_clip_get_config(te)->hidden;
    float *e = malloc((size_t)T * D * 4), *ne = malloc((size_t)T * D * 4);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const prompt_case *pc = &cases[i];
        int32_t ids[77], nids[77];
        tokenize(tok, pc->prompt ? pc->prompt : ASTRO, ids);
        tokenize(tok, pc->negative, nids);
        EXPECT_OK(df_sd15_encode_prompt(te, ids, nids, pc->clip_skip, e, ne));
        char name[128], label[160];
        snprintf(name, sizeof name, "%s.out.prompt_embeds", pc->name);
        float *want = dfg_need_f32(g, name, NULL);
        snprintf(label, sizeof label, "%s %s prompt_embeds", what, pc->name);
        compare(e, want, (size_t)T * D, label);
        free(want);
        snprintf(name, sizeof name, "%s.out.negative_prompt_embeds", pc->name);
        want = dfg_need_f32(g, name, NULL);
        snprintf(label, sizeof label, "%s %s negative_prompt_embeds", what, pc->name);
        compare(ne, want, (size_t)T * D, label);
        free(want);
    }
    int32_t ids[77];
    tokenize(tok, ASTRO, ids);
    EXPECT_ERR(df_sd15_encode_prompt(te, ids, NULL, 0, e, ne), DF_ERR_ARG, "negative token ids");
    free(e), free(ne);
    df_st_close(g);
}

// ---------------------------------------------------------------------------------------------
// Causal attention: fast vs _ref, and the mask (a change in a later token leaves earlier rows).

static void check_attention(void) {
    const int cfgs[3][3] = {{77, 4, 8}, {77, 2, 5}, {9, 3, 16}};
    uint32_t s = 12345;
    for (int c = 0; c < 3; c++) {
        const int T = cfgs[c][0], NH = cfgs[c][1], HS = cfgs[c][2], D = NH * HS;
        const size_t n = (size_t)T * D;
        float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4);
        float *o1 = malloc(n * 4), *o2 = malloc(n * 4), *sc = malloc((size_t)T * T * 4);
        for (size_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            q[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 6;
            s = s * 1664525u + 1013904223u;
            k[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 6;
            s = s * 1664525u + 1013904223u;
            v[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 2;
        }
        const float scale = 1.0f / sqrtf((float)HS);
        df_clip_causal_attention(o1, q, k, v, T, NH, HS, scale, sc);
        df_clip_causal_attention_ref(o2, q, k, v, T, NH, HS, scale, sc);
        df_allclose(o1, o2, n, 2e-6f, 2e-5f, "causal attention fast vs ref");
        // row 0 attends only to key 0: out = v[0]
        df_allclose(o1, v, (size_t)D, 1e-6f, 1e-6f, "causal attention row 0");
        // perturbing the last token changes only the last row
        k[n - 1] += 1.0f, v[n - 1] += 1.0f;
        df_clip_causal_attention(o2, q, k, v, T, NH, HS, scale, sc);
        EXPECT_TRUE(memcmp(o1, o2, (n - D) * 4) == 0);
        EXPECT_TRUE(memcmp(o1 + n - D, o2 + n - D, (size_t)D * 4) != 0);
        free(q), free(k), free(v), free(o1), free(o2), free(sc);
    }
}

// ---------------------------------------------------------------------------------------------
// Single-file mapping of text_encoder names vs the fixture's mapping json.

static void check_mapping(void) {
    cJSON *root = dfg_load_json(dfg_path("models/tiny-sd15-single/tiny-sd15.mapping.json"));
    EXPECT_TRUE(root != NULL);
    if (!root) return;
    int checked = 0, bad = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *want = it->valuestring;
        char got[512];
        int hit = df_i_ldm_map_clip(it->string, 0, got, sizeof got);
        if (strncmp(want, "text_encoder/", 13) == 0) {
            checked++;
            if (!hit || strcmp(got, want + 13) != 0) {
                if (bad++ < 5) fprintf(stderr, "  map %s -> %s, want %s\n", it->string,
                                       hit ? got : "(none)", want);
            }
        } else if (hit) {
            if (bad++ < 5) fprintf(stderr, "  %s mapped to te %s\n", it->string, got);
        }
        // never a text_encoder_2 name in an SD1.5 file
        if (df_i_ldm_map_clip(it->string, 1, got, sizeof got) && bad++ < 5)
            fprintf(stderr, "  %s mapped to te2 %s\n", it->string, got);
    }
    fprintf(stderr, "  mapping json: %d text_encoder names checked, %d wrong\n", checked, bad);
    EXPECT_EQ_I64(checked, 52);
    EXPECT_EQ_I64(bad, 0);
    cJSON_Delete(root);

    // SDXL / OpenCLIP names (spec §1.3)
    static const char *const pairs[][2] = {
        {"conditioner.embedders.0.transformer.text_model.final_layer_norm.bias",
         "text_model.final_layer_norm.bias"},
        {"conditioner.embedders.1.model.token_embedding.weight",
         "text_model.embeddings.token_embedding.weight"},
        {"conditioner.embedders.1.model.positional_embedding",
         "text_model.embeddings.position_embedding.weight"},
        {"conditioner.embedders.1.model.ln_final.weight", "text_model.final_layer_norm.weight"},
        {"conditioner.embedders.1.model.transformer.resblocks.31.ln_1.bias",
         "text_model.encoder.layers.31.layer_norm1.bias"},
        {"conditioner.embedders.1.model.transformer.resblocks.0.ln_2.weight",
         "text_model.encoder.layers.0.layer_norm2.weight"},
        {"conditioner.embedders.1.model.transformer.resblocks.7.mlp.c_fc.weight",
         "text_model.encoder.layers.7.mlp.fc1.weight"},
        {"conditioner.embedders.1.model.transformer.resblocks.7.mlp.c_proj.bias",
         "text_model.encoder.layers.7.mlp.fc2.bias"},
        {"conditioner.embedders.1.model.transformer.resblocks.12.attn.out_proj.weight",
         "text_model.encoder.layers.12.self_attn.out_proj.weight"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char got[256];
        const int which = strncmp(pairs[i][0], "conditioner.embedders.1", 23) == 0;
        int hit = df_i_ldm_map_clip(pairs[i][0], which, got, sizeof got);
        EXPECT_TRUE(hit && strcmp(got, pairs[i][1]) == 0);
        EXPECT_TRUE(!df_i_ldm_map_clip(pairs[i][0], !which, got, sizeof got));
    }
    char got[256];
    EXPECT_TRUE(!df_i_ldm_map_clip("conditioner.embedders.1.model.logit_scale", 1, got, 256));
    EXPECT_TRUE(!df_i_ldm_map_clip(
        "cond_stage_model.transformer.text_model.embeddings.position_ids", 0, got, 256));
    EXPECT_TRUE(!df_i_ldm_map_clip("model.diffusion_model.out.2.weight", 0, got, 256));
    // too small an output buffer is "not mapped", never a truncated name
    EXPECT_TRUE(!df_i_ldm_map_clip("conditioner.embedders.1.model.ln_final.weight", 1, got, 8));
}

// ---------------------------------------------------------------------------------------------
// Error paths and the transformers >= 5.6 layout (no "text_model." prefix).

// A copy of table src without `drop` and, if strip, with the "text_model." prefix removed.
static df_weights *copy_table(const df_weights *src, const char *drop, int strip) {
    df_weights *w = NULL;
    if (df_i_weights_create("test copy", &w) != DF_OK) return NULL;
    for (int i = 0; i < df_weights_count(src); i++) {
        const df_st_tensor *t = df_weights_at(src, i);
        if (drop && strcmp(t->name, drop) == 0) continue;
        const char *name = t->name;
        if (strip && strncmp(name, "text_model.", 11) == 0) name += 11;
        if (df_i_weights_add(w, name, t) != DF_OK) {
            df_weights_destroy(w);
            return NULL;
        }
    }
    return w;
}

// "<test models folder>/<rel>" (df_test_models_dir; main sets g_models).
static const char *g_models;
static const char *mdl_path(const char *rel) {
    static char buf[4][4400];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_models, rel);
    return buf[k];
}

static void check_errors(const char *te_dir, df_clip *ref) {
    df_clip_config cfg;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", te_dir);
    EXPECT_OK(df_clip_config_load(path, &cfg));
    df_weights *w = NULL;
    EXPECT_OK(df_weights_open_dir(mdl_path("tiny-sdxl"), "text_encoder", &w));
    if (!w) return;
    df_clip *m = NULL;

    // missing tensor: the error names it
    df_weights *w2 = copy_table(w, "text_model.encoder.layers.1.mlp.fc2.weight", 0);
    EXPECT_ERR(df_clip_create(&cfg, w2, &m), DF_ERR_FORMAT,
               "text_model.encoder.layers.1.mlp.fc2.weight");
    EXPECT_TRUE(m == NULL);
    df_weights_destroy(w2);

    // config that does not match the stored shapes
    df_clip_config bad = cfg;
    bad.intermediate = 38;
    EXPECT_ERR(df_clip_create(&bad, w, &m), DF_ERR_SHAPE, "mlp.fc1.weight");
    bad = cfg;
    bad.has_projection = 1;
    EXPECT_ERR(df_clip_create(&bad, w, &m), DF_ERR_FORMAT, "text_projection.weight");

    // names without the text_model. prefix give identical results
    w2 = copy_table(w, NULL, 1);
    EXPECT_OK(df_clip_create(&cfg, w2, &m));
    if (m) {
        int32_t ids[77] = {49406, 320, 1125, 539, 320, 2368}; // "a photo of a cat"
        for (int t = 6; t < 77; t++) ids[t] = 49407;
        float *a = malloc(77 * 32 * 4), *b = malloc(77 * 32 * 4);
        df_clip_outputs o = {0};
        o.last_hidden_state = a;
        EXPECT_OK(df_clip_forward(m, ids, 77, &o));
        o.last_hidden_state = b;
        EXPECT_OK(df_clip_forward(ref, ids, 77, &o));
        EXPECT_TRUE(memcmp(a, b, 77 * 32 * 4) == 0);
        // bad inputs
        ids[3] = 49408;
        EXPECT_ERR(df_clip_forward(m, ids, 77, &o), DF_ERR_ARG, "position 3");
        ids[3] = 5;
        EXPECT_ERR(df_clip_forward(m, ids, 78, &o), DF_ERR_ARG, "sequence length 78");
        df_clip_outputs o2 = {0};
        o2.text_embeds = a;
        EXPECT_ERR(df_clip_forward(m, ids, 77, &o2), DF_ERR_ARG, "text_projection");
        o2.text_embeds = NULL;
        o2.hidden = a;
        o2.hidden_index = -5; // 4 hidden states
        EXPECT_ERR(df_clip_forward(m, ids, 77, &o2), DF_ERR_ARG, "hidden_index -5");
        free(a), free(b);
        df_clip_destroy(m);
    }
    df_weights_destroy(w2);
    df_weights_destroy(w);

    EXPECT_ERR(df_clip_config_parse("{\"hidden_act\": \"relu\"}", "cfg", &bad),
               DF_ERR_UNSUPPORTED, "relu");
    EXPECT_ERR(df_clip_config_parse("{\"hidden_size\": 30, \"num_attention_heads\": 4}", "cfg",
                                    &bad),
               DF_ERR_FORMAT, "not divisible");
    EXPECT_ERR(df_clip_config_parse("[1]", "cfg", &bad), DF_ERR_FORMAT, "not a JSON object");
    EXPECT_ERR(df_clip_load(mdl_path("tiny-sdxl"), "no_such_encoder", &m), DF_ERR_IO,
               "no_such_encoder");
}

// ---------------------------------------------------------------------------------------------
// SDXL single file (SGM layout): no fixture exists, so one is written from the tiny-sdxl folder
// weights: text_encoder under conditioner.embedders.0.transformer.* (HF names), text_encoder_2
// in OpenCLIP layout under conditioner.embedders.1.model.* (fused attn.in_proj_weight/bias
// [3C][C] / [3C], text_projection stored as x @ P, i.e. transposed, ln_1/ln_2/mlp.c_fc/c_proj,
// positional_embedding, ln_final, logit_scale). Loading it through df_weights_from_single must
// reproduce the text_encoders golden.

typedef struct blob {
    void *p[64];
    int n;
} blob;

static void *keep(blob *b, size_t bytes) {
    void *p = malloc(bytes);
    if (b->n < 64) b->p[b->n++] = p;
    return p;
}

static int st_add(df_st_writer *wr, const char *name, const df_st_tensor *t) {
    return df_st_writer_add(wr, name, t->dtype, t->ndim, t->shape, t->data) == DF_OK;
}

static int write_sdxl_single(const char *path) {
    df_weights *w1 = NULL, *w2 = NULL;
    df_st_writer *wr = NULL;
    blob b = {{0}, 0};
    int ok = df_weights_open_dir(dfg_path("models/tiny-sdxl"), "text_encoder", &w1) == DF_OK &&
             df_weights_open_dir(dfg_path("models/tiny-sdxl"), "text_encoder_2", &w2) == DF_OK &&
             df_st_writer_create(&wr) == DF_OK;
    char name[256];
    for (int i = 0; ok && i < df_weights_count(w1); i++) {
        const df_st_tensor *t = df_weights_at(w1, i);
        snprintf(name, sizeof name, "conditioner.embedders.0.transformer.%s", t->name);
        ok = st_add(wr, name, t);
    }
    static const char *const ren[][2] = {
        {"layer_norm1.", "ln_1."}, {"layer_norm2.", "ln_2."}, {"mlp.fc1.", "mlp.c_fc."},
        {"mlp.fc2.", "mlp.c_proj."}, {"self_attn.out_proj.", "attn.out_proj."}};
    for (int i = 0; ok && i < df_weights_count(w2); i++) {
        const df_st_tensor *t = df_weights_at(w2, i);
        const char *n = t->name;
        int layer, off = 0;
        if (strcmp(n, "text_model.embeddings.token_embedding.weight") == 0) {
            ok = st_add(wr, "conditioner.embedders.1.model.token_embedding.weight", t);
        } else if (strcmp(n, "text_model.embeddings.position_embedding.weight") == 0) {
            ok = st_add(wr, "conditioner.embedders.1.model.positional_embedding", t);
        } else if (strncmp(n, "text_model.final_layer_norm.", 28) == 0) {
            snprintf(name, sizeof name, "conditioner.embedders.1.model.ln_final.%s", n + 28);
            ok = st_add(wr, name, t);
        } else if (strcmp(n, "text_projection.weight") == 0) { // [P][D] -> P^T [D][P]
            const size_t r = (size_t)t->shape[0], c = (size_t)t->shape[1];
            const size_t es = df_dtype_size(t->dtype);
            unsigned char *d = keep(&b, t->nbytes);
            for (size_t y = 0; y < r; y++)
                for (size_t x = 0; x < c; x++)
                    memcpy(d + (x * r + y) * es, (const unsigned char *)t->data + (y * c + x) * es,
                           es);
            const int64_t sh[2] = {(int64_t)c, (int64_t)r};
            ok = df_st_writer_add(wr, "conditioner.embedders.1.model.text_projection", t->dtype,
                                  2, sh, d) == DF_OK;
        } else if (sscanf(n, "text_model.encoder.layers.%d.%n", &layer, &off) == 1 && off > 0) {
            const char *tail = n + off;
            if (strncmp(tail, "self_attn.q_proj.", 17) == 0) { // fuse q, k, v rows
                const char *kind = tail + 17;                   // weight / bias
                const df_st_tensor *qkv[3];
                static const char *const pn[3] = {"q", "k", "v"};
                for (int j = 0; j < 3; j++) {
                    snprintf(name, sizeof name, "text_model.encoder.layers.%d.self_attn.%s_proj.%s",
                             layer, pn[j], kind);
                    qkv[j] = df_weights_find(w2, name);
                }
                unsigned char *d = keep(&b, 3 * t->nbytes);
                for (int j = 0; j < 3; j++) memcpy(d + j * t->nbytes, qkv[j]->data, t->nbytes);
                int64_t sh[2] = {3 * t->shape[0], t->ndim > 1 ? t->shape[1] : 0};
                snprintf(name, sizeof name,
                         "conditioner.embedders.1.model.transformer.resblocks.%d.attn.in_proj_%s",
                         layer, kind);
                ok = df_st_writer_add(wr, name, t->dtype, t->ndim, sh, d) == DF_OK;
            } else if (strncmp(tail, "self_attn.k_proj.", 17) == 0 ||
                       strncmp(tail, "self_attn.v_proj.", 17) == 0) {
                continue; // fused above
            } else {
                int done = 0;
                for (size_t k = 0; k < sizeof ren / sizeof ren[0] && !done; k++) {
                    const size_t L = strlen(ren[k][0]);
                    if (strncmp(tail, ren[k][0], L) != 0) continue;
                    snprintf(name, sizeof name,
                             "conditioner.embedders.1.model.transformer.resblocks.%d.%s%s", layer,
                             ren[k][1], tail + L);
                    ok = st_add(wr, name, t);
                    done = 1;
                }
                if (!done) ok = 0;
            }
        } else {
            ok = 0;
        }
    }
    const float ls = 4.6052f; // an ignored extra
    const int64_t one[1] = {1};
    if (ok) ok = df_st_writer_add(wr, "conditioner.embedders.1.model.logit_scale", DF_DTYPE_F32,
                                  0, one, &ls) == DF_OK;
    if (ok) ok = df_st_write(wr, path) == DF_OK;
    if (!ok) fprintf(stderr, "writing %s failed: %s\n", path, df_last_error());
    df_st_writer_destroy(wr);
    for (int i = 0; i < b.n; i++) free(b.p[i]);
    df_weights_destroy(w1);
    df_weights_destroy(w2);
    return ok;
}

static void check_sdxl_single(void) {
    char path[] = "/tmp/df_test_clip_sdxl_single_XXXXXX";
    int fd = mkstemp(path);
    EXPECT_TRUE(fd >= 0);
    if (fd < 0) return;
    close(fd);
    EXPECT_TRUE(write_sdxl_single(path));
    df_st_file *f = NULL, *g = NULL;
    df_weights *w1 = NULL, *w2 = NULL;
    df_clip *te1 = NULL, *te2 = NULL;
    df_clip_config c1, c2;
    EXPECT_OK(df_st_open(path, &f));
    EXPECT_OK(df_clip_config_load(dfg_path("models/tiny-sdxl/text_encoder/config.json"), &c1));
    EXPECT_OK(df_clip_config_load(dfg_path("models/tiny-sdxl/text_encoder_2/config.json"), &c2));
    if (f) {
        EXPECT_OK(df_weights_from_single(f, "text_encoder", &w1));
        EXPECT_OK(df_weights_from_single(f, "text_encoder_2", &w2));
    }
    if (w1) EXPECT_OK(df_clip_create(&c1, w1, &te1));
    if (w2) EXPECT_OK(df_clip_create(&c2, w2, &te2));
    EXPECT_OK(df_st_open(dfg_path("sdxl/text_encoders.safetensors"), &g));
    if (te1 && te2 && g) {
        check_encoder(te1, g, "te1", "sdxl-single");
        check_encoder(te2, g, "te2", "sdxl-single");
        char msg[256];
        EXPECT_EQ_I64(df_weights_unused(w1, "", msg, sizeof msg), 0);
        EXPECT_EQ_I64(df_weights_unused(w2, "", msg, sizeof msg), 0);
    }
    df_clip_destroy(te1);
    df_clip_destroy(te2);
    df_weights_destroy(w1);
    df_weights_destroy(w2);
    df_st_close(g);
    df_st_close(f);
    unlink(path);
}

int main(void) {
    // Everything but the golden comparisons runs on the df-make-model test models.
    if (!(g_models = df_test_models_dir())) return 1;
    dfg_dir = df_test_golden_dir();
    df_set_threads(2);

    check_attention();
    {
        df_clip *t = NULL;
        EXPECT_OK(df_clip_load(mdl_path("tiny-sdxl"), "text_encoder", &t));
        if (t) check_errors(mdl_path("tiny-sdxl/text_encoder"), t);
        df_clip_destroy(t);
    }
    if (!dfg_dir) {
        fprintf(stderr, "golden comparisons skipped (name mapping, encoder outputs)\n");
        return df_test_result();
    }
    check_mapping();

    // SDXL fixture (F16 weights)
    df_clip *te1 = NULL, *te2 = NULL;
    EXPECT_OK(df_clip_load(dfg_path("models/tiny-sdxl"), "text_encoder", &te1));
    EXPECT_OK(df_clip_load(dfg_path("models/tiny-sdxl"), "text_encoder_2", &te2));
    df_st_file *g = NULL;
    EXPECT_OK(df_st_open(dfg_path("sdxl/text_encoders.safetensors"), &g));
    if (te1 && te2 && g) {
        EXPECT_EQ_I64(df_clip_get_config(te1)->has_projection, 0);
        EXPECT_EQ_I64(df_clip_get_config(te2)->has_projection, 1);
        EXPECT_EQ_I64(df_clip_get_config(te2)->act, DF_CLIP_ACT_GELU);
        check_encoder(te1, g, "te1", "sdxl");
        check_encoder(te2, g, "te2", "sdxl");
        df_tokenizer *tok1 = NULL, *tok2 = NULL;
        EXPECT_OK(df_tokenizer_load(dfg_path("models/tiny-sdxl/tokenizer"), -1, &tok1));
        EXPECT_OK(df_tokenizer_load(dfg_path("models/tiny-sdxl/tokenizer_2"), -1, &tok2));
        if (tok1 && tok2) check_sdxl_prompts(te1, te2, tok1, tok2);
        df_tokenizer_destroy(tok1);
        df_tokenizer_destroy(tok2);
    }
    df_st_close(g);
    df_clip_destroy(te1);
    df_clip_destroy(te2);
    check_sdxl_single();

    // SD 1.5 folder (F32) and the LDM single file (F16), same golden
    df_tokenizer *tok = NULL;
    EXPECT_OK(df_tokenizer_load(dfg_path("models/tiny-sd15/tokenizer"), -1, &tok));
    EXPECT_OK(df_st_open(dfg_path("sd15/text_encoders.safetensors"), &g));
    df_clip *te = NULL;
    EXPECT_OK(df_clip_load(dfg_path("models/tiny-sd15"), "text_encoder", &te));
    if (te && g && tok) {
        check_encoder(te, g, "te1", "sd15");
        check_sd15_prompts(te, tok, "sd15");
    }
    df_clip_destroy(te);
    te = NULL;

    df_st_file *single = NULL;
    df_weights *ws = NULL;
    df_clip_config cfg;
    EXPECT_OK(df_st_open(dfg_path("models/tiny-sd15-single/tiny-sd15.safetensors"), &single));
    EXPECT_OK(df_clip_config_load(dfg_path("models/tiny-sd15/text_encoder/config.json"), &cfg));
    if (single) EXPECT_OK(df_weights_from_single(single, "text_encoder", &ws));
    if (ws) EXPECT_OK(df_clip_create(&cfg, ws, &te));
    if (te && g && tok) {
        check_encoder(te, g, "te1", "sd15-single");
        check_sd15_prompts(te, tok, "sd15-single");
        char msg[256];
        EXPECT_EQ_I64(df_weights_unused(ws, "", msg, sizeof msg), 0);
    }
    df_clip_destroy(te);
    df_weights_destroy(ws);
    df_st_close(single);
    df_st_close(g);
    df_tokenizer_destroy(tok);
    return df_test_result();
}
