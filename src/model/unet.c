// UNet2DConditionModel forward (sdxl.md §3), NHWC f32, on a row band through the patch context.
//
// Reading order: creation and loading; planning (activation arena); text conditioning; the
// layers (GroupNorm, linear, conv, resnet, transformer); df_unet_forward (top-down, like
// llama2.c's forward()); cost model. The df_unet struct, the weight structs and PROF live in
// model/unet_impl.h; weight lookup and the f32 weight cache in unet_weights.c, the profile tables
// in unet_profile.c, the tensor-parallel layer variants in unet_tp_layers.c.
//
// Legend: B batch, H/W band rows/width at a level, T = H*W tokens per image, P = B*T pixels,
// C channels, G GroupNorm groups, F feed-forward inner width (4C), Tt text tokens.
#include "model/unet_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---------------------------------------------------------------------------------------------
// Creation / loading

df_status df_unet_create(const df_unet_config *cfg, df_weights *w, df_unet **out) {
    *out = NULL;
    df_status st = df_unet_config_validate(cfg);
    if (st != DF_OK) {
        df_weights_destroy(w);
        return st;
    }
    df_unet *u = calloc(1, sizeof *u);
    if (!u) {
        df_weights_destroy(w);
        return DF_ERROR(DF_ERR_NOMEM, "out of memory");
    }
    u->cfg = *cfg;
    u->w = w;
    u->prof.on = DF_UNET_PROFILE;
    u->cache_mb = DF_UNET_CACHE_MB;
    u->conv_algo = DF_CONV_ALGO_DEFAULT;
    st = df_unet_resolve_weights(u);
    if (st == DF_OK) st = df_unet_build_cache(u);
    if (st != DF_OK) {
        df_unet_destroy(u);
        return st;
    }
    *out = u;
    return DF_OK;
}

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

df_status df_unet_load(const char *path, const char *ldm_yaml, df_unet **out) {
    *out = NULL;
    char buf[4096], cfgpath[4200];
    df_unet_config cfg;
    df_weights *w = NULL;
    if (is_dir(path)) {
        // pipeline folder (unet/ inside) or the unet folder itself
        snprintf(buf, sizeof buf, "%s/unet/config.json", path);
        const char *comp = "unet";
        if (!is_file(buf)) {
            snprintf(buf, sizeof buf, "%s/config.json", path);
            comp = ".";
            DF_FAIL_IF(!is_file(buf), DF_ERR_IO,
                       "%s: neither a diffusers pipeline folder (unet/config.json) nor a unet "
                       "folder (config.json)", path);
        }
        DF_TRY(df_unet_config_from_json(buf, &cfg));
        DF_TRY(df_weights_open_dir(path, comp, &w));
        return df_unet_create(&cfg, w, out);
    }
    df_st_file *f = NULL;
    DF_TRY(df_st_open(path, &f));
    df_status st;
    if (df_st_find(f, "model.diffusion_model.input_blocks.0.0.weight")) {
        st = df_weights_from_single(f, "unet", &w);
        if (st == DF_OK) st = df_unet_config_from_weights(w, ldm_yaml, &cfg);
        if (st == DF_OK) {
            df_unet *u = NULL;
            st = df_unet_create(&cfg, w, &u);
            w = NULL;
            if (st == DF_OK) {
                u->single = f;
                *out = u;
                return DF_OK;
            }
        }
        df_weights_destroy(w);
        df_st_close(f);
        return st;
    }
    // A diffusers UNet file given directly: config.json next to it, else derived from tensors.
    int is_unet = df_st_find(f, "conv_in.weight") != NULL;
    df_st_close(f);
    DF_FAIL_IF(!is_unet, DF_ERR_UNSUPPORTED,
               "%s: unknown architecture: no UNet tensors ('conv_in.weight' or "
               "'model.diffusion_model.input_blocks.0.0.weight')", path);
    DF_TRY(df_weights_open(path, &w));
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (slash) *slash = '\0';
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", slash ? buf : ".");
    st = is_file(cfgpath) ? df_unet_config_from_json(cfgpath, &cfg)
                          : df_unet_config_from_weights(w, ldm_yaml, &cfg);
    if (st != DF_OK) {
        df_weights_destroy(w);
        return st;
    }
    return df_unet_create(&cfg, w, out);
}

static void free_trans(utrans *t) {
    free(t->blocks);
    t->blocks = NULL;
}

void df_unet_destroy(df_unet *u) {
    if (!u) return;
    df_unet_pr_print(u);
    for (int i = 0; i < DF_UNET_MAX_LEVELS; i++)
        for (int j = 0; j < DF_UNET_MAX_LAYERS; j++) {
            free_trans(&u->down[i].attn[j]);
            free_trans(&u->up[i].attn[j]);
        }
    free_trans(&u->mid_attn);
    free(u->reg);
    df_free(u->cache);
    df_free(u->wscr);
    df_free(u->wscr2);
    df_free(u->wbf);
    df_free(u->wbf2);
    df_free(u->arena);
    df_free(u->text);
    df_unet_tp_destroy(u->tp);
    df_weights_destroy(u->w);
    df_st_close(u->single);
    free(u);
}

const df_unet_config *df_unet_get_config(const df_unet *u) {
    return &u->cfg;
}

void df_unet_set_conv_algo(df_unet *u, int algo) { u->conv_algo = algo; }

void df_unet_set_debug(df_unet *u, df_unet_debug_fn fn, void *user) {
    u->dbg = fn;
    u->dbg_user = user;
}

// ---------------------------------------------------------------------------------------------
// Planning: sizes of every activation buffer for (B, H, W, band rows), one arena.

typedef struct plan_sizes {
    size_t skip[3 * DF_UNET_MAX_LEVELS * DF_UNET_MAX_LAYERS];
    int nskip;
    size_t h, cat, t1, t2, tr, ff, tbuf;
} plan_sizes;

#define MAXZ(a, b) ((a) = (a) > (b) ? (a) : (b))

static void plan_resnet(plan_sizes *s, const uresnet *r, size_t P) {
    MAXZ(s->t1, P * r->cin);
    MAXZ(s->t2, P * r->cout);
    MAXZ(s->tbuf, (size_t)r->cout);
}

static void plan_trans(plan_sizes *s, const utrans *t, size_t P) {
    if (!t->depth) return;
    MAXZ(s->t1, P * t->C);
    MAXZ(s->t2, P * t->C);
    MAXZ(s->tr, P * t->C);
    MAXZ(s->ff, ff_chunk_tokens(P, t->C) * 12 * (size_t)t->C);
}

static void plan_walk(const df_unet *u, plan_sizes *s) {
    const df_unet_config *c = &u->cfg;
    const int n = c->n_levels;
    size_t P[DF_UNET_MAX_LEVELS] = {0};
    for (int l = 0; l < n; l++) P[l] = (size_t)u->B * u->hb[l] * u->wl[l];
    memset(s, 0, sizeof *s);
    MAXZ(s->t1, P[0] * c->in_channels); // center_input_sample
    s->skip[s->nskip++] = P[0] * c->block_out[0];
    for (int i = 0; i < n; i++) {
        const ublk *d = &u->down[i];
        for (int j = 0; j < d->nres; j++) {
            plan_resnet(s, &d->res[j], P[i]);
            plan_trans(s, &d->attn[j], P[i]);
            s->skip[s->nskip++] = P[i] * d->res[j].cout;
        }
        if (d->has_sample) s->skip[s->nskip++] = P[i + 1] * d->sample.cout;
    }
    const int top = n - 1;
    if (c->mid_attn) {
        plan_resnet(s, &u->mid_res[0], P[top]);
        plan_trans(s, &u->mid_attn, P[top]);
        plan_resnet(s, &u->mid_res[1], P[top]);
        MAXZ(s->h, P[top] * u->mid_res[1].cout);
    }
    for (int i = 0; i < n; i++) {
        const ublk *b = &u->up[i];
        const int l = n - 1 - i;
        for (int j = 0; j < b->nres; j++) {
            plan_resnet(s, &b->res[j], P[l]);
            plan_trans(s, &b->attn[j], P[l]);
            MAXZ(s->cat, P[l] * b->res[j].cin);
            MAXZ(s->h, P[l] * b->res[j].cout);
        }
        if (b->has_sample) {
            MAXZ(s->t1, P[l - 1] * b->sample.cin); // upsampled input
            MAXZ(s->h, P[l - 1] * b->sample.cout);
        }
    }
    MAXZ(s->t1, P[0] * c->block_out[0]); // conv_norm_out
}

// Points every buffer into `base` (64-byte aligned slices); returns the floats used. base NULL
// only measures.
static size_t carve(df_unet *u, const plan_sizes *s, float *base) {
    const df_unet_config *c = &u->cfg;
    const size_t B = (size_t)u->B, G = (size_t)c->norm_groups, ted = (size_t)c->time_embed_dim;
    size_t off = 0;
#define TAKE(ptr, nfl)                                                                         \
    do {                                                                                       \
        (ptr) = base ? base + off : NULL;                                                      \
        off += ((size_t)(nfl) + 15) & ~(size_t)15;                                             \
    } while (0)
    float *st;
    TAKE(st, 4 * B * G); // [B][G][2] doubles
    u->gstats = (double *)st;
    u->nskip = s->nskip;
    for (int i = 0; i < s->nskip; i++) TAKE(u->skip[i], s->skip[i]);
    TAKE(u->hA, s->h);
    TAKE(u->hB, s->h);
    TAKE(u->cat, s->cat);
    TAKE(u->t1, s->t1);
    TAKE(u->t2, s->t2);
    TAKE(u->ts, s->tr);
    TAKE(u->tq, s->tr);
    TAKE(u->tk, s->tr);
    TAKE(u->tv, s->tr);
    u->ff_floats = s->ff;
    TAKE(u->ffg, s->ff);
    TAKE(u->tproj, B * c->time_proj_dim);
    TAKE(u->temb, B * ted);
    TAKE(u->semb, B * ted);
    TAKE(u->tmp_e, B * ted);
    TAKE(u->tbuf, B * s->tbuf);
    TAKE(u->gmean, B * G);
    TAKE(u->gvar, B * G);
    TAKE(u->grstd, B * G);
#undef TAKE
    return off;
}

df_status df_unet_plan(df_unet *u, int B, int H, int W, int band_rows) {
    const df_unet_config *c = &u->cfg;
    const int n = c->n_levels, f = 1 << (n - 1);
    DF_FAIL_IF(B < 1 || H < 1 || W < 1 || band_rows < 1 || band_rows > H, DF_ERR_ARG,
               "unet plan: bad sizes B=%d H=%d W=%d band_rows=%d", B, H, W, band_rows);
    DF_FAIL_IF(band_rows != H && band_rows % f != 0, DF_ERR_SHAPE,
               "unet plan: band of %d rows is not divisible by %d (2^%d downsamplers), so the "
               "deepest level would not split evenly; use latent heights divisible by %d x bands",
               band_rows, f, n - 1, f);
    df_free(u->arena);
    u->arena = NULL;
    u->planned = 0;
    u->text_set = 0;
    u->B = B;
    u->H = H;
    u->W = W;
    u->Hb = band_rows;
    u->hb[0] = band_rows;
    u->wl[0] = W;
    for (int l = 1; l < n; l++) {
        u->hb[l] = (u->hb[l - 1] + 1) / 2; // ceil: stride-2 conv with padding 1
        u->wl[l] = (u->wl[l - 1] + 1) / 2;
    }
    plan_sizes s;
    plan_walk(u, &s);
    size_t total = carve(u, &s, NULL); // measure, then allocate and point
    u->arena = df_malloc(total * sizeof(float));
    DF_FAIL_IF(!u->arena, DF_ERR_NOMEM, "out of memory (UNet activation arena %zu MB)",
               total * 4 >> 20);
    u->arena_floats = carve(u, &s, u->arena);
    DF_ASSERT(u->arena_floats == total);
    u->planned = 1;
    return DF_OK;
}

size_t df_unet_arena_bytes(const df_unet *u) {
    size_t scr = u->wscr ? 2 * u->max_matrix * sizeof(float) : 0;
    return u->arena_floats * sizeof(float) + u->text_floats * sizeof(float) + scr;
}

// ---------------------------------------------------------------------------------------------
// Text conditioning: attn2 K/V of every layer, SDXL added embedding.

// Calls fn(u, block, C) for every BasicTransformerBlock in forward order.
static void for_each_block(df_unet *u, void (*fn)(df_unet *, ublock *, int, void *), void *arg) {
    const df_unet_config *c = &u->cfg;
    for (int i = 0; i < c->n_levels; i++)
        for (int j = 0; j < u->down[i].nres; j++)
            for (int k = 0; k < u->down[i].attn[j].depth; k++)
                fn(u, &u->down[i].attn[j].blocks[k], u->down[i].attn[j].C, arg);
    for (int k = 0; k < u->mid_attn.depth; k++)
        fn(u, &u->mid_attn.blocks[k], u->mid_attn.C, arg);
    for (int i = 0; i < c->n_levels; i++)
        for (int j = 0; j < u->up[i].nres; j++)
            for (int k = 0; k < u->up[i].attn[j].depth; k++)
                fn(u, &u->up[i].attn[j].blocks[k], u->up[i].attn[j].C, arg);
}

static void count_text(df_unet *u, ublock *b, int C, void *arg) {
    *(size_t *)arg += 2 * (size_t)u->B * u->Tt * C;
}

typedef struct text_job {
    const float *enc; // [B][Tt][X]
    float *p;         // next free slot in the text arena
} text_job;

static void fill_text(df_unet *u, ublock *b, int C, void *arg) {
    text_job *j = arg;
    const int M = u->B * u->Tt, X = u->cfg.cross_attention_dim;
    b->ktext = j->p;
    j->p += (size_t)M * C;
    b->vtext = j->p;
    j->p += (size_t)M * C;
    df_linear(b->ktext, j->enc, lin_w(&b->k2, u->wscr), NULL, M, X, C, 0); // [B*Tt][C]
    df_linear(b->vtext, j->enc, lin_w(&b->v2, u->wscr), NULL, M, X, C, 0);
}

df_status df_unet_set_text(df_unet *u, int B, const float *enc, int T_text,
                           const float *text_embeds, const float *time_ids) {
    const df_unet_config *c = &u->cfg;
    DF_FAIL_IF(!u->planned, DF_ERR_ARG, "unet: df_unet_set_text before df_unet_plan");
    DF_FAIL_IF(B != u->B, DF_ERR_ARG, "unet: text batch %d != planned batch %d", B, u->B);
    DF_FAIL_IF(T_text < 1 || !enc, DF_ERR_ARG, "unet: encoder_hidden_states missing (T=%d)",
               T_text);
    DF_FAIL_IF(c->addition_embed && (!text_embeds || !time_ids), DF_ERR_ARG,
               "unet: this UNet (addition_embed_type text_time) needs text_embeds [B][%d] and "
               "time_ids [B][%d]", c->text_embeds_dim, c->n_time_ids);
    u->text_set = 0;
    u->Tt = T_text;
    const int ted = c->time_embed_dim, nid = c->n_time_ids, atd = c->addition_time_embed_dim;
    size_t need = 0;
    for_each_block(u, count_text, &need);
    if (c->addition_embed)
        need += (size_t)B * (2 * (size_t)ted + (size_t)nid * atd + (size_t)c->add_in_dim);
    if (need > u->text_floats) {
        df_free(u->text);
        u->text = df_malloc((need ? need : 1) * sizeof(float));
        u->text_floats = u->text ? need : 0;
        DF_FAIL_IF(!u->text, DF_ERR_NOMEM, "out of memory (text K/V cache %zu MB)",
                   need * 4 >> 20);
    }
    text_job job = {enc, u->text};
    for_each_block(u, fill_text, &job);
    if (c->addition_embed) {
        // aug = linear_2(SiLU(linear_1(concat(text_embeds, time_proj(time_ids)))))
        float *aug = job.p, *tp = aug + (size_t)B * ted, *in = tp + (size_t)B * nid * atd;
        float *h = in + (size_t)B * c->add_in_dim;
        const int P = c->text_embeds_dim;
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < nid; i++) // [B*nid][atd], cos first (flip_sin_to_cos)
                df_timestep_embedding(tp + ((size_t)b * nid + i) * atd, time_ids[b * nid + i], atd,
                                      c->flip_sin_to_cos, c->freq_shift);
            float *row = in + (size_t)b * c->add_in_dim; // [P + nid*atd]
            memcpy(row, text_embeds + (size_t)b * P, (size_t)P * sizeof(float));
            memcpy(row + P, tp + (size_t)b * nid * atd, (size_t)nid * atd * sizeof(float));
        }
        df_linear(h, in, lin_w(&u->add1, u->wscr), u->add1.b.f, B, c->add_in_dim, ted, 0);
        df_silu(h, h, (size_t)B * ted);
        df_linear(aug, h, lin_w(&u->add2, u->wscr), u->add2.b.f, B, ted, ted, 0);
        u->aug = aug;
        u->add_tproj = tp;
    }
    u->text_set = 1;
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Layers

static void debug_dump(df_unet *u, const char *name, const float *x, int B, int H, int W, int C) {
    if (u->dbg) u->dbg(u->dbg_user, name, x, B, H, W, C);
}

// y = GroupNorm(x) (+ SiLU) over B images of T tokens; statistics through the context.
df_status df_unet_group_norm(df_unet *u, df_pctx *ctx, const unorm *n, const float *x, float *y,
                             int B, int T, float eps, int silu) {
    const int G = u->cfg.norm_groups, C = n->C;
    PROF(u, PR_NORM, T, 0, {
        for (int b = 0; b < B; b++)
            df_group_norm_stats(u->gstats + (size_t)b * 2 * G, x + (size_t)b * T * C, T, C, G);
    });
    const double count = (double)T * (C / G);
    DF_TRY(ctx->ops->gn_stats(ctx, u->idx++, n->name, u->gstats, B, G, count, u->gmean, u->gvar));
    for (int i = 0; i < B * G; i++) u->grstd[i] = 1.0f / sqrtf(u->gvar[i] + eps);
    PROF(u, PR_NORM, T, 0, {
        for (int b = 0; b < B; b++)
            df_group_norm_apply(y + (size_t)b * T * C, x + (size_t)b * T * C, u->gmean + b * G,
                                u->grstd + b * G, n->g.f, n->b.f, T, C, G, silu);
    });
    return DF_OK;
}

// y [M][out] (=|+=) x [M][in] W^T + b for a linear layer; T: tokens per image (profile level).
static void lin(df_unet *u, float *y, const float *x, const ulin *l, float *scr, int M, int T,
                int accumulate) {
    if (lin_bf16(u, l, M)) {
        df_bf16_mat m;
        PROF(u, PR_LIN_W, T, 0, m = lin_wb(l, u->wbf));
        PROF(u, PR_LIN, T, 2.0 * M * l->in * l->out,
             df_linear_bf16(y, x, &m, l->b.f, M, l->in, l->out, accumulate));
        return;
    }
    const float *w;
    PROF(u, PR_LIN_W, T, 0, w = lin_w(l, scr));
    PROF(u, PR_LIN, T, 2.0 * M * l->in * l->out,
         df_linear(y, x, w, l->b.f, M, l->in, l->out, accumulate));
}

// y [B][Ho][Wo][cout] = conv3x3(x [B][H][W][cin]) with halo rows from the context.
static df_status conv3(df_unet *u, df_pctx *ctx, const uconv *c, const float *x, float *y, int B,
                       int H, int W, int stride) {
    if (ctx->tp_size > 1 && c != &u->conv_in)
        return df_unet_conv3_tp(u, ctx, c, x, y, B, H, W, stride);
    const float *top = NULL, *bot = NULL;
    DF_TRY(ctx->ops->conv_halo(ctx, u->idx++, c->name, x, B, H, W, c->cin, 1, &top, &bot));
    const int Ho = stride == 1 ? H : (H + 1) / 2, Wo = stride == 1 ? W : (W + 1) / 2;
    if (u->bf16 && c->cin % 2 == 0 && c->cout >= 16) { // --compute bf16
        df_bf16_mat m;
        PROF(u, PR_CONV_W, H * W, 0, m = conv_wb(c, u->wbf));
        PROF(u, PR_CONV, Ho * Wo, 18.0 * B * Ho * Wo * c->cin * c->cout,
             df_conv2d_bf16(y, x, top, bot, &m, c->b.f, B, H, W, c->cin, c->cout, stride));
        return DF_OK;
    }
    const float *w;
    PROF(u, PR_CONV_W, H * W, 0, w = conv_w(u, c));
    PROF(u, PR_CONV, Ho * Wo, 18.0 * B * Ho * Wo * c->cin * c->cout,
         df_conv2d_algo(u->conv_algo, y, x, top, bot, w, c->b.f, B, H, W, c->cin, c->cout, 3,
                        stride));
    return DF_OK;
}

// t2 [P][co] += e [P / T][co] (one row per image of T tokens).
static void add_rows(float *t2, const float *tb, size_t P, int T, int co) {
#pragma omp parallel for schedule(static) if (P * co > 65536)
    for (size_t p = 0; p < P; p++) {
        const float *e = tb + (p / T) * co; // [cout]
        float *row = t2 + p * co;
        for (int k = 0; k < co; k++) row[k] += e[k];
    }
}

static void div_scalar(float *y, size_t n, float s) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] /= s;
}

// ResnetBlock2D: y = (shortcut(x) + conv2(SiLU(GN2(conv1(SiLU(GN1(x))) + temb)))) / scale.
// x [B][T][cin], y [B][T][cout] (y != x). Uses t1, t2, tbuf.
static df_status resnet(df_unet *u, df_pctx *ctx, const uresnet *r, const float *x, float *y,
                        int B, int H, int W) {
    if (ctx->tp_size > 1) return df_unet_resnet_tp(u, ctx, r, x, y, B, H, W);
    const int T = H * W, ci = r->cin, co = r->cout;
    const size_t P = (size_t)B * T;
    const float eps = u->cfg.norm_eps;
    DF_TRY(df_unet_group_norm(u, ctx, &r->norm1, x, u->t1, B, T, eps, 1)); // t1 [P][cin]
    DF_TRY(conv3(u, ctx, &r->conv1, u->t1, u->t2, B, H, W, 1));    // t2 [P][cout]
    // + time_emb_proj(SiLU(emb)) per image: tbuf [B][cout]
    lin(u, u->tbuf, u->semb, &r->temb, u->wscr, B, T, 0);
    float *t2 = u->t2;
    const float *tb = u->tbuf;
    PROF(u, PR_EW, T, 0, add_rows(t2, tb, P, T, co));
    DF_TRY(df_unet_group_norm(u, ctx, &r->norm2, u->t2, u->t2, B, T, eps, 1));
    DF_TRY(conv3(u, ctx, &r->conv2, u->t2, y, B, H, W, 1)); // y [P][cout]
    if (r->has_sc) // y += conv_shortcut(x) (1x1 conv as a GEMM, residual fused)
        lin(u, y, x, &r->sc, u->wscr, (int)P, T, 1);
    else
        PROF(u, PR_EW, T, 0, df_add(y, y, x, P * co));
    (void)ci;
    if (r->out_scale != 1.0f) {
        const float s = r->out_scale;
        PROF(u, PR_EW, T, 0, div_scalar(y, P * co, s));
    }
    return DF_OK;
}

// out [B][T][C] = softmax(Q K^T / sqrt(d)) V per image and head; K/V have Tk tokens per image.
static void attention(float *out, const float *q, const float *k, const float *v, int B, int T,
                      int Tk, int C, int heads) {
    for (int b = 0; b < B; b++)
        df_attention(out + (size_t)b * T * C, C, q + (size_t)b * T * C, C, k + (size_t)b * Tk * C,
                     C, v + (size_t)b * Tk * C, C, T, Tk, heads, C / heads);
}

// BasicTransformerBlock on the token stream s [B][T][C] (in place):
//   s += attn1(LN1(s)); s += attn2(LN2(s), text); s += FF(LN3(s)) with FF = net.2(GEGLU(net.0))
static df_status transformer_block(df_unet *u, df_pctx *ctx, const ublock *k, float *s, int B,
                                   int T, int C, int heads) {
    if (ctx->tp_size > 1) return df_unet_transformer_block_tp(u, ctx, k, s, B, T, C, heads);
    const int P = B * T;
    const float eps = u->cfg.layer_norm_eps;
    float *n = u->t1, *o = u->t2, *q = u->tq; // [P][C] each
    // self-attention: local queries against the keys/values of the whole image
    PROF(u, PR_NORM, T, 0, df_layer_norm(n, s, k->ln1.g.f, k->ln1.b.f, P, C, eps));
    lin(u, q, n, &k->q1, u->wscr, P, T, 0);
    lin(u, u->tk, n, &k->k1, u->wscr, P, T, 0);
    lin(u, u->tv, n, &k->v1, u->wscr, P, T, 0);
    const float *kf = NULL, *vf = NULL;
    int Tf = 0;
    DF_TRY(ctx->ops->attn_kv(ctx, u->idx++, k->attn1, u->tk, u->tv, B, T, C, &kf, &vf, &Tf));
    PROF(u, PR_ATT_SELF, T, 4.0 * B * T * Tf * C, attention(o, q, kf, vf, B, T, Tf, C, heads));
    lin(u, s, o, &k->o1, u->wscr, P, T, 1);
    // cross-attention with the cached text K/V
    PROF(u, PR_NORM, T, 0, df_layer_norm(n, s, k->ln2.g.f, k->ln2.b.f, P, C, eps));
    lin(u, q, n, &k->q2, u->wscr, P, T, 0);
    PROF(u, PR_ATT_X, T, 4.0 * B * T * u->Tt * C,
         attention(o, q, k->ktext, k->vtext, B, T, u->Tt, C, heads));
    lin(u, s, o, &k->o2, u->wscr, P, T, 1);
    // feed-forward in token chunks: g [tc][2F] -> GEGLU -> [tc][F] -> s += . W2^T + b2
    PROF(u, PR_NORM, T, 0, df_layer_norm(n, s, k->ln3.g.f, k->ln3.b.f, P, C, eps));
    const int F = 4 * C, tc = (int)ff_chunk_tokens((size_t)P, C);
    const float *w1 = NULL, *w2 = NULL;
    df_bf16_mat m1, m2; // --compute bf16
    const int bf = lin_bf16(u, &k->ff1, tc < P ? tc : P);
    if (bf) {
        PROF(u, PR_LIN_W, T, 0, m1 = lin_wb(&k->ff1, u->wbf));
        PROF(u, PR_LIN_W, T, 0, m2 = lin_wb(&k->ff2, u->wbf2));
    } else {
        PROF(u, PR_LIN_W, T, 0, w1 = lin_w(&k->ff1, u->wscr));
        PROF(u, PR_LIN_W, T, 0, w2 = lin_w(&k->ff2, u->wscr2));
    }
    float *g = u->ffg, *h = u->ffg + (size_t)tc * 2 * F;
    for (int t0 = 0; t0 < P; t0 += tc) {
        const int m = P - t0 < tc ? P - t0 : tc;
        if (bf)
            PROF(u, PR_LIN, T, 2.0 * m * C * 2 * F,
                 df_linear_bf16(g, n + (size_t)t0 * C, &m1, k->ff1.b.f, m, C, 2 * F, 0));
        else
            PROF(u, PR_LIN, T, 2.0 * m * C * 2 * F,
                 df_linear(g, n + (size_t)t0 * C, w1, k->ff1.b.f, m, C, 2 * F, 0));
        PROF(u, PR_EW, T, 0, df_geglu(h, g, m, F));
        if (bf)
            PROF(u, PR_LIN, T, 2.0 * m * F * C,
                 df_linear_bf16(s + (size_t)t0 * C, h, &m2, k->ff2.b.f, m, F, C, 1));
        else
            PROF(u, PR_LIN, T, 2.0 * m * F * C,
                 df_linear(s + (size_t)t0 * C, h, w2, k->ff2.b.f, m, F, C, 1));
    }
    return DF_OK;
}

// Transformer2DModel, in place on x [B][T][C]: x += proj_out(blocks(proj_in(GN(x)))).
static df_status transformer(df_unet *u, df_pctx *ctx, const utrans *tr, float *x, int B, int H,
                             int W) {
    const int T = H * W, C = tr->C, P = B * T;
    DF_TRY(df_unet_group_norm(u, ctx, &tr->norm, x, u->t1, B, T, u->cfg.transformer_norm_eps, 0));
    lin(u, u->ts, u->t1, &tr->proj_in, u->wscr, P, T, 0);
    for (int j = 0; j < tr->depth; j++)
        DF_TRY(transformer_block(u, ctx, &tr->blocks[j], u->ts, B, T, C, tr->heads));
    lin(u, x, u->ts, &tr->proj_out, u->wscr, P, T, 1);
    return DF_OK;
}

// Nearest upsampling of x [B][H][W][C] to [B][Ho][Wo][C] with Ho in {2H-1, 2H} (sdxl.md §2: with
// an explicit size, src = floor(dst * in / out), which equals dst / 2 here).
static void upsample(float *y, const float *x, int B, int H, int W, int C, int Ho, int Wo) {
    if (Ho == 2 * H && Wo == 2 * W) {
        df_upsample2x(y, x, B, H, W, C);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int r = 0; r < B * Ho; r++) {
        const int b = r / Ho, yy = r % Ho;
        const float *src = x + ((size_t)b * H + yy / 2) * W * C;
        float *dst = y + (size_t)r * Wo * C;
        for (int xx = 0; xx < Wo; xx++)
            memcpy(dst + (size_t)xx * C, src + (size_t)(xx / 2) * C, (size_t)C * sizeof(float));
    }
}

// ---------------------------------------------------------------------------------------------
// Forward

df_status df_unet_forward(df_unet *u, df_pctx *ctx, const float *x, const float *t, float *out) {
    const df_unet_config *c = &u->cfg;
    const int B = u->B, n = c->n_levels, ted = c->time_embed_dim, tp = c->time_proj_dim;
    DF_FAIL_IF(!u->planned, DF_ERR_ARG, "unet: forward before df_unet_plan");
    DF_FAIL_IF(!u->text_set, DF_ERR_ARG, "unet: forward before df_unet_set_text");
    DF_FAIL_IF(ctx->row1 - ctx->row0 != u->Hb || ctx->H_full != u->H, DF_ERR_SHAPE,
               "unet: context band [%d, %d) of %d rows does not match the plan (%d of %d rows)",
               ctx->row0, ctx->row1, ctx->H_full, u->Hb, u->H);
    u->idx = 0;
    const int *hb = u->hb, *wl = u->wl;
    u->T0 = hb[0] * wl[0];
    if (u->prof.on) df_unet_pr_begin(u);

    // 1. Time embedding: emb = linear_2(SiLU(linear_1(sinusoid(t)))) (+ aug)  [B][ted]
    for (int b = 0; b < B; b++)
        df_timestep_embedding(u->tproj + (size_t)b * tp, t[b], tp, c->flip_sin_to_cos,
                              c->freq_shift);
    debug_dump(u, "time_proj", u->tproj, B, 1, 1, tp);
    df_linear(u->tmp_e, u->tproj, lin_w(&u->time1, u->wscr), u->time1.b.f, B, tp, ted, 0);
    df_silu(u->tmp_e, u->tmp_e, (size_t)B * ted);
    df_linear(u->temb, u->tmp_e, lin_w(&u->time2, u->wscr), u->time2.b.f, B, ted, ted, 0);
    debug_dump(u, "time_embedding", u->temb, B, 1, 1, ted);
    if (c->addition_embed) {
        debug_dump(u, "add_time_proj", u->add_tproj, B * c->n_time_ids, 1, 1,
                   c->addition_time_embed_dim);
        debug_dump(u, "add_embedding", u->aug, B, 1, 1, ted);
        df_add(u->temb, u->temb, u->aug, (size_t)B * ted);
    }
    df_silu(u->semb, u->temb, (size_t)B * ted); // every resnet's time_emb_proj input

    // 2. conv_in (pushes skip 0)
    const float *xin = x;
    if (c->center_input_sample) {
        size_t m = (size_t)B * hb[0] * wl[0] * c->in_channels;
        for (size_t i = 0; i < m; i++) u->t1[i] = 2.0f * x[i] - 1.0f;
        xin = u->t1;
    }
    int sp = 0; // skip stack depth
    float *h = u->skip[sp++];
    DF_TRY(conv3(u, ctx, &u->conv_in, xin, h, B, hb[0], wl[0], 1));
    debug_dump(u, "conv_in", h, B, hb[0], wl[0], c->block_out[0]);

    // 3. Down blocks: each (resnet [, transformer]) output and each downsampler output is a skip
    char nm[32];
    for (int i = 0; i < n; i++) {
        const ublk *d = &u->down[i];
        for (int j = 0; j < d->nres; j++) {
            float *y = u->skip[sp++];
            DF_TRY(resnet(u, ctx, &d->res[j], h, y, B, hb[i], wl[i]));
            if (d->attn[j].depth) DF_TRY(transformer(u, ctx, &d->attn[j], y, B, hb[i], wl[i]));
            h = y;
        }
        int C = c->block_out[i], lv = i;
        if (d->has_sample) {
            float *y = u->skip[sp++];
            DF_TRY(conv3(u, ctx, &d->sample, h, y, B, hb[i], wl[i], 2));
            h = y;
            lv = i + 1;
        }
        snprintf(nm, sizeof nm, "down_blocks.%d", i);
        debug_dump(u, nm, h, B, hb[lv], wl[lv], C);
    }
    DF_ASSERT(sp == u->nskip);

    // 4. Mid block: resnet, transformer, resnet
    const int top = n - 1;
    int C = c->block_out[top];
    if (c->mid_attn) {
        DF_TRY(resnet(u, ctx, &u->mid_res[0], h, u->hA, B, hb[top], wl[top]));
        DF_TRY(transformer(u, ctx, &u->mid_attn, u->hA, B, hb[top], wl[top]));
        DF_TRY(resnet(u, ctx, &u->mid_res[1], u->hA, u->hB, B, hb[top], wl[top]));
        h = u->hB;
        debug_dump(u, "mid_block", h, B, hb[top], wl[top], C);
    }

    // 5. Up blocks: concat([h, skip]) -> resnet [-> transformer], LIFO skips; then upsample
    for (int i = 0; i < n; i++) {
        const ublk *b = &u->up[i];
        const int l = n - 1 - i;
        const size_t P = (size_t)B * hb[l] * wl[l];
        for (int j = 0; j < b->nres; j++) {
            const float *s = u->skip[--sp];
            const int cs = b->res[j].cin - C;
            PROF(u, PR_EW, P / B, 0, df_concat_channels(u->cat, h, s, P, C, cs)); // [P][C + cs]
            float *y = h == u->hA ? u->hB : u->hA;
            DF_TRY(resnet(u, ctx, &b->res[j], u->cat, y, B, hb[l], wl[l]));
            if (b->attn[j].depth) DF_TRY(transformer(u, ctx, &b->attn[j], y, B, hb[l], wl[l]));
            h = y;
            C = b->res[j].cout;
        }
        int lv = l;
        if (b->has_sample) { // nearest x2 to the next skip's size, then conv
            lv = l - 1;
            PROF(u, PR_EW, hb[lv] * wl[lv], 0,
                 upsample(u->t1, h, B, hb[l], wl[l], C, hb[lv], wl[lv]));
            float *y = h == u->hA ? u->hB : u->hA;
            DF_TRY(conv3(u, ctx, &b->sample, u->t1, y, B, hb[lv], wl[lv], 1));
            h = y;
        }
        snprintf(nm, sizeof nm, "up_blocks.%d", i);
        debug_dump(u, nm, h, B, hb[lv], wl[lv], C);
    }
    DF_ASSERT(sp == 0);

    // 6. out = conv_out(SiLU(conv_norm_out(h)))
    const int T0 = hb[0] * wl[0];
    DF_TRY(df_unet_group_norm(u, ctx, &u->norm_out, h, u->t1, B, T0, c->norm_eps, u->dbg == NULL));
    if (u->dbg) {
        debug_dump(u, "conv_norm_out", u->t1, B, hb[0], wl[0], C);
        df_silu(u->t1, u->t1, (size_t)B * T0 * C);
    }
    DF_TRY(conv3(u, ctx, &u->conv_out, u->t1, out, B, hb[0], wl[0], 1));
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Cost model (sdxl.md §8.1): multiply-adds per image at a full latent H x W.

static double macs_resnet(const uresnet *r, double T, int ted) {
    double m = 9.0 * T * r->cin * r->cout + 9.0 * T * r->cout * r->cout + (double)ted * r->cout;
    if (r->has_sc) m += T * r->cin * r->cout;
    return m;
}

static double macs_trans(const utrans *t, double T, int Tt, int X) {
    if (!t->depth) return 0;
    const double C = t->C;
    double m = 2 * T * C * C; // proj_in, proj_out
    double blk = 4 * T * C * C + 2 * T * T * C      // attn1: q, k, v, out; QK^T, AV
                 + 2 * T * C * C + 2.0 * Tt * X * C // attn2: q, out; k, v of the text
                 + 2 * T * Tt * C                   // attn2 core
                 + T * C * 8 * C + T * 4 * C * C;   // GEGLU proj, net.2
    return m + t->depth * blk;
}

double df_unet_macs(const df_unet_config *c, int H, int W, int T_text) {
    // Uses the same construction rules as resolve_weights, without weights.
    const int n = c->n_levels, L = c->layers_per_block, X = c->cross_attention_dim;
    const int ted = c->time_embed_dim;
    double hs[DF_UNET_MAX_LEVELS], ws[DF_UNET_MAX_LEVELS];
    hs[0] = H;
    ws[0] = W;
    for (int l = 1; l < n; l++) {
        hs[l] = ceil(hs[l - 1] / 2);
        ws[l] = ceil(ws[l - 1] / 2);
    }
    double m = (double)c->time_proj_dim * ted + (double)ted * ted;
    if (c->addition_embed) m += (double)c->add_in_dim * ted + (double)ted * ted;
    m += 9.0 * hs[0] * ws[0] * c->in_channels * c->block_out[0];
    utrans tr;
    uresnet r;
    memset(&tr, 0, sizeof tr);
    memset(&r, 0, sizeof r);
    for (int i = 0; i < n; i++) {
        const double T = hs[i] * ws[i];
        for (int j = 0; j < L; j++) {
            r.cin = j == 0 ? (i == 0 ? c->block_out[0] : c->block_out[i - 1]) : c->block_out[i];
            r.cout = c->block_out[i];
            r.has_sc = r.cin != r.cout;
            m += macs_resnet(&r, T, ted);
            tr.C = c->block_out[i];
            tr.depth = c->down_attn[i] ? c->tl_down[i][j] : 0;
            m += macs_trans(&tr, T, T_text, X);
        }
        if (i < n - 1) m += 9.0 * hs[i + 1] * ws[i + 1] * c->block_out[i] * c->block_out[i];
    }
    if (c->mid_attn) {
        const double T = hs[n - 1] * ws[n - 1];
        r.cin = r.cout = c->block_out[n - 1];
        r.has_sc = 0;
        m += 2 * macs_resnet(&r, T, ted);
        tr.C = r.cout;
        tr.depth = c->tl_mid;
        m += macs_trans(&tr, T, T_text, X);
    }
    for (int i = 0; i < n; i++) {
        const int l = n - 1 - i, out = c->block_out[l];
        const int prev = c->block_out[n - 1 - (i == 0 ? 0 : i - 1)];
        const int in = c->block_out[n - 1 - (i + 1 < n ? i + 1 : n - 1)];
        const double T = hs[l] * ws[l];
        for (int j = 0; j <= L; j++) {
            r.cin = (j == 0 ? prev : out) + (j == L ? in : out);
            r.cout = out;
            r.has_sc = r.cin != r.cout;
            m += macs_resnet(&r, T, ted);
            tr.C = out;
            tr.depth = c->up_attn[i] ? c->tl_up[i][j] : 0;
            m += macs_trans(&tr, T, T_text, X);
        }
        if (i < n - 1) m += 9.0 * hs[l - 1] * ws[l - 1] * out * out;
    }
    m += 9.0 * hs[0] * ws[0] * c->block_out[0] * c->out_channels;
    return m;
}
