// UNet weights: lookup of every tensor of the configuration, the f32 weight cache (vectors
// always, matrices when they fit the limit; else per-use conversion scratch) and the bf16 weight
// scratch of --compute bf16.
#include "model/unet_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t weight_floats(const wreg *r) {
    return r->p->t ? r->p->t->numel : 0;
}

static df_status reg_add(df_unet *u, uparam *p, int kind, int cout, int cin) {
    if (u->nreg == u->capreg) {
        int cap = u->capreg ? 2 * u->capreg : 1024;
        wreg *n = realloc(u->reg, (size_t)cap * sizeof *n);
        DF_FAIL_IF(!n, DF_ERR_NOMEM, "out of memory");
        u->reg = n;
        u->capreg = cap;
    }
    u->reg[u->nreg++] = (wreg){p, kind, cout, cin};
    return DF_OK;
}

static df_status fetch(df_unet *u, uparam *p, const char *prefix, const char *suffix, int ndim,
                       int64_t d0, int64_t d1, int64_t d2, int64_t d3, int kind, int cout,
                       int cin) {
    char name[2 * NAME_CAP];
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    const int64_t shape[4] = {d0, d1, d2, d3};
    DF_TRY(df_weights_get(u->w, name, ndim, shape, &p->t));
    u->weight_bytes += p->t->nbytes;
    return reg_add(u, p, kind, cout, cin);
}

static df_status get_lin(df_unet *u, ulin *l, const char *prefix, int out, int in, int bias) {
    l->in = in;
    l->out = out;
    DF_TRY(fetch(u, &l->w, prefix, ".weight", 2, out, in, 0, 0, 1, out, in));
    if (bias) DF_TRY(fetch(u, &l->b, prefix, ".bias", 1, out, 0, 0, 0, 0, 0, 0));
    return DF_OK;
}

static df_status get_conv(df_unet *u, uconv *c, const char *prefix, int cout, int cin) {
    c->cin = cin;
    c->cout = cout;
    snprintf(c->name, sizeof c->name, "%s", prefix);
    DF_TRY(fetch(u, &c->w, prefix, ".weight", 4, cout, cin, 3, 3, 2, cout, cin));
    return fetch(u, &c->b, prefix, ".bias", 1, cout, 0, 0, 0, 0, 0, 0);
}

static df_status get_norm(df_unet *u, unorm *n, const char *prefix, int C) {
    n->C = C;
    snprintf(n->name, sizeof n->name, "%s", prefix);
    DF_TRY(fetch(u, &n->g, prefix, ".weight", 1, C, 0, 0, 0, 0, 0, 0));
    return fetch(u, &n->b, prefix, ".bias", 1, C, 0, 0, 0, 0, 0, 0);
}

static df_status get_resnet(df_unet *u, uresnet *r, const char *prefix, int cin, int cout,
                            float out_scale) {
    char p[2 * NAME_CAP];
    snprintf(r->name, sizeof r->name, "%s", prefix);
    r->cin = cin;
    r->cout = cout;
    r->out_scale = out_scale;
    snprintf(p, sizeof p, "%s.norm1", prefix);
    DF_TRY(get_norm(u, &r->norm1, p, cin));
    snprintf(p, sizeof p, "%s.conv1", prefix);
    DF_TRY(get_conv(u, &r->conv1, p, cout, cin));
    snprintf(p, sizeof p, "%s.time_emb_proj", prefix);
    DF_TRY(get_lin(u, &r->temb, p, cout, u->cfg.time_embed_dim, 1));
    snprintf(p, sizeof p, "%s.norm2", prefix);
    DF_TRY(get_norm(u, &r->norm2, p, cout));
    snprintf(p, sizeof p, "%s.conv2", prefix);
    DF_TRY(get_conv(u, &r->conv2, p, cout, cout));
    r->has_sc = cin != cout;
    if (r->has_sc) { // 1x1 conv [cout][cin][1][1] == Linear [cout][cin]
        snprintf(p, sizeof p, "%s.conv_shortcut", prefix);
        r->sc.in = cin;
        r->sc.out = cout;
        DF_TRY(fetch(u, &r->sc.w, p, ".weight", 4, cout, cin, 1, 1, 1, cout, cin));
        DF_TRY(fetch(u, &r->sc.b, p, ".bias", 1, cout, 0, 0, 0, 0, 0, 0));
    }
    return DF_OK;
}

static df_status get_transformer(df_unet *u, utrans *tr, const char *prefix, int C, int heads,
                                 int depth) {
    const df_unet_config *c = &u->cfg;
    char p[2 * NAME_CAP], q[2 * NAME_CAP + 32];
    snprintf(tr->name, sizeof tr->name, "%s", prefix);
    tr->C = C;
    tr->heads = heads;
    tr->depth = depth;
    snprintf(p, sizeof p, "%s.norm", prefix);
    DF_TRY(get_norm(u, &tr->norm, p, C));
    // proj_in/out: Linear [C][C] or 1x1 conv [C][C][1][1] (the same op on NHWC tokens)
    snprintf(p, sizeof p, "%s.proj_in", prefix);
    tr->proj_in.in = tr->proj_in.out = C;
    DF_TRY(fetch(u, &tr->proj_in.w, p, ".weight", c->use_linear_projection ? 2 : 4, C, C, 1, 1, 1,
                 C, C));
    DF_TRY(fetch(u, &tr->proj_in.b, p, ".bias", 1, C, 0, 0, 0, 0, 0, 0));
    snprintf(p, sizeof p, "%s.proj_out", prefix);
    tr->proj_out.in = tr->proj_out.out = C;
    DF_TRY(fetch(u, &tr->proj_out.w, p, ".weight", c->use_linear_projection ? 2 : 4, C, C, 1, 1,
                 1, C, C));
    DF_TRY(fetch(u, &tr->proj_out.b, p, ".bias", 1, C, 0, 0, 0, 0, 0, 0));
    tr->blocks = calloc((size_t)depth, sizeof *tr->blocks);
    DF_FAIL_IF(!tr->blocks, DF_ERR_NOMEM, "out of memory");
    const int F = 4 * C, X = c->cross_attention_dim;
    for (int j = 0; j < depth; j++) {
        ublock *b = &tr->blocks[j];
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", prefix, j);
        snprintf(b->attn1, sizeof b->attn1, "%s.attn1", p);
#define SUB(s) (snprintf(q, sizeof q, "%s.%s", p, (s)), q)
        DF_TRY(get_norm(u, &b->ln1, SUB("norm1"), C));
        DF_TRY(get_lin(u, &b->q1, SUB("attn1.to_q"), C, C, 0));
        DF_TRY(get_lin(u, &b->k1, SUB("attn1.to_k"), C, C, 0));
        DF_TRY(get_lin(u, &b->v1, SUB("attn1.to_v"), C, C, 0));
        DF_TRY(get_lin(u, &b->o1, SUB("attn1.to_out.0"), C, C, 1));
        DF_TRY(get_norm(u, &b->ln2, SUB("norm2"), C));
        DF_TRY(get_lin(u, &b->q2, SUB("attn2.to_q"), C, C, 0));
        DF_TRY(get_lin(u, &b->k2, SUB("attn2.to_k"), C, X, 0));
        DF_TRY(get_lin(u, &b->v2, SUB("attn2.to_v"), C, X, 0));
        DF_TRY(get_lin(u, &b->o2, SUB("attn2.to_out.0"), C, C, 1));
        DF_TRY(get_norm(u, &b->ln3, SUB("norm3"), C));
        DF_TRY(get_lin(u, &b->ff1, SUB("ff.net.0.proj"), 2 * F, C, 1));
        DF_TRY(get_lin(u, &b->ff2, SUB("ff.net.2"), C, F, 1));
#undef SUB
    }
    return DF_OK;
}

// Looks up every tensor of the configuration (sdxl.md §3.1 construction rules).
df_status df_unet_resolve_weights(df_unet *u) {
    const df_unet_config *c = &u->cfg;
    const int n = c->n_levels, L = c->layers_per_block, ted = c->time_embed_dim;
    char p[NAME_CAP];
    DF_TRY(get_conv(u, &u->conv_in, "conv_in", c->block_out[0], c->in_channels));
    DF_TRY(get_lin(u, &u->time1, "time_embedding.linear_1", ted, c->time_proj_dim, 1));
    DF_TRY(get_lin(u, &u->time2, "time_embedding.linear_2", ted, ted, 1));
    if (c->addition_embed) {
        DF_TRY(get_lin(u, &u->add1, "add_embedding.linear_1", ted, c->add_in_dim, 1));
        DF_TRY(get_lin(u, &u->add2, "add_embedding.linear_2", ted, ted, 1));
    }
    for (int i = 0; i < n; i++) {
        ublk *d = &u->down[i];
        int cin = i == 0 ? c->block_out[0] : c->block_out[i - 1], cout = c->block_out[i];
        d->nres = L;
        for (int j = 0; j < L; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            DF_TRY(get_resnet(u, &d->res[j], p, j == 0 ? cin : cout, cout, c->resnet_out_scale));
            if (c->down_attn[i]) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
                DF_TRY(get_transformer(u, &d->attn[j], p, cout, c->heads_down[i],
                                       c->tl_down[i][j]));
            }
        }
        d->has_sample = i < n - 1;
        if (d->has_sample) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            DF_TRY(get_conv(u, &d->sample, p, cout, cout));
        }
    }
    if (c->mid_attn) {
        int C = c->block_out[n - 1];
        DF_TRY(get_resnet(u, &u->mid_res[0], "mid_block.resnets.0", C, C, c->mid_out_scale));
        DF_TRY(get_transformer(u, &u->mid_attn, "mid_block.attentions.0", C, c->heads_mid,
                               c->tl_mid));
        DF_TRY(get_resnet(u, &u->mid_res[1], "mid_block.resnets.1", C, C, c->mid_out_scale));
    }
    for (int i = 0; i < n; i++) {
        ublk *b = &u->up[i];
        int out = c->block_out[n - 1 - i];
        int prev = c->block_out[n - 1 - (i == 0 ? 0 : i - 1)];
        int in = c->block_out[n - 1 - (i + 1 < n ? i + 1 : n - 1)];
        b->nres = L + 1;
        for (int j = 0; j <= L; j++) {
            int ch = j == 0 ? prev : out, cs = j == L ? in : out;
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            DF_TRY(get_resnet(u, &b->res[j], p, ch + cs, out, c->resnet_out_scale));
            if (c->up_attn[i]) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                DF_TRY(get_transformer(u, &b->attn[j], p, out, c->heads_up[i], c->tl_up[i][j]));
            }
        }
        b->has_sample = i < n - 1;
        if (b->has_sample) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            DF_TRY(get_conv(u, &b->sample, p, out, out));
        }
    }
    DF_TRY(get_norm(u, &u->norm_out, "conv_norm_out", c->block_out[0]));
    DF_TRY(get_conv(u, &u->conv_out, "conv_out", c->out_channels, c->block_out[0]));
    char msg[768];
    int extra = df_weights_unused(u->w, NULL, msg, sizeof msg);
    DF_FAIL_IF(extra > 0, DF_ERR_FORMAT,
               "%s: %d unexpected tensor(s) not used by the UNet config (%s): %s",
               df_weights_path(u->w), extra, c->arch, msg);
    return DF_OK;
}

// dst[i] = src[i] as f32, in parallel chunks.
void df_unet_convert_par(float *dst, const df_st_tensor *t) {
    const size_t n = t->numel, chunk = (size_t)1 << 16, es = df_dtype_size(t->dtype);
    const long nch = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static) if (nch > 4)
    for (long c = 0; c < nch; c++) {
        size_t o = (size_t)c * chunk, m = n - o < chunk ? n - o : chunk;
        df_convert_to_f32(dst + o, (const unsigned char *)t->data + o * es, t->dtype, m);
    }
}

// Conv weight [Cout][Cin][3][3] -> HWIO [3][3][Cin][Cout] (df_conv_weight_pack's layout), in
// parallel over ranges of 16-channel blocks (df_conv_weight_pack_range: register-transposed
// 16 x 16 blocks, no temporary).
void df_unet_pack_conv_par(float *dst, const df_st_tensor *t, int cout, int cin) {
    const int nb = (cout + 15) / 16;
#pragma omp parallel for schedule(static) if ((size_t)cout * cin > 65536)
    for (int b = 0; b < nb; b++) {
        const int c0 = 16 * b, c1 = c0 + 16 < cout ? c0 + 16 : cout;
        df_conv_weight_pack_range(dst, t->data, t->dtype, cout, cin, 3, c0, c1);
    }
}

// Converts vectors always, matrices when they all fit the cache limit; sets up the scratch.
df_status df_unet_build_cache(df_unet *u) {
    size_t vec = 0, mat = 0, maxm = 0;
    for (int i = 0; i < u->nreg; i++) {
        size_t n = weight_floats(&u->reg[i]);
        if (u->reg[i].kind == 0) vec += n;
        else {
            mat += n;
            if (n > maxm) maxm = n;
        }
    }
    const size_t limit_mb = u->cache_mb;
    const int cache_mats = mat * sizeof(float) <= limit_mb * ((size_t)1 << 20);
    size_t total = vec + (cache_mats ? mat : 0);
    u->cache = df_malloc((total ? total : 1) * sizeof(float));
    DF_FAIL_IF(!u->cache, DF_ERR_NOMEM, "out of memory (%zu MB f32 weight cache)",
               total * 4 >> 20);
    u->cache_bytes = total * sizeof(float);
    float *p = u->cache;
    for (int i = 0; i < u->nreg; i++) {
        wreg *r = &u->reg[i];
        const df_st_tensor *t = r->p->t;
        if (!t) continue;
        if (r->kind == 0 || cache_mats) {
            if (r->kind == 2) df_conv_weight_pack(p, t->data, t->dtype, r->cout, r->cin, 3);
            else df_unet_convert_par(p, t);
            r->p->f = p;
            p += t->numel;
        } else if (r->kind == 1 && t->dtype == DF_DTYPE_F32 && ((uintptr_t)t->data & 3) == 0) {
            r->p->f = t->data; // zero-copy f32 linear
        }
    }
    if (!cache_mats) {
        u->max_matrix = maxm;
        u->wscr = df_malloc(maxm * sizeof(float));
        u->wscr2 = df_malloc(maxm * sizeof(float));
        DF_FAIL_IF(!u->wscr || !u->wscr2, DF_ERR_NOMEM,
                   "out of memory (2 x %zu MB weight conversion scratch)", maxm * 4 >> 20);
    }
    return DF_OK;
}

size_t df_unet_weight_bytes(const df_unet *u) {
    return u->weight_bytes;
}

df_status df_unet_set_weight_cache(df_unet *u, size_t limit_mb) {
    DF_FAIL_IF(u->planned, DF_ERR_ARG, "unet: set the weight cache before df_unet_plan");
    for (int i = 0; i < u->nreg; i++) u->reg[i].p->f = NULL;
    df_free(u->cache);
    df_free(u->wscr);
    df_free(u->wscr2);
    u->cache = u->wscr = u->wscr2 = NULL;
    u->cache_bytes = u->max_matrix = 0;
    df_unet_tp_destroy(u->tp); // rebuilt with the new limit
    u->tp = NULL;
    u->cache_mb = limit_mb;
    return df_unet_build_cache(u);
}

int df_unet_set_compute(df_unet *u, int bf16) {
    if (!bf16 || !df_bf16_available()) {
        u->bf16 = 0;
        return 0;
    }
    if (!u->wbf) {
        size_t mx = 0; // largest packed matrix
        for (int i = 0; i < u->nreg; i++) {
            const wreg *r = &u->reg[i];
            if (!r->p->t || r->kind == 0) continue;
            const size_t e = r->kind == 2 ? df_bf16_mat_elems(9 * r->cin, r->cout)
                                          : df_bf16_mat_elems(r->cin, r->cout);
            if (e > mx) mx = e;
        }
        u->wbf = df_malloc((mx ? mx : 1) * sizeof(uint16_t));
        u->wbf2 = df_malloc((mx ? mx : 1) * sizeof(uint16_t));
        if (!u->wbf || !u->wbf2) {
            df_free(u->wbf), df_free(u->wbf2);
            u->wbf = u->wbf2 = NULL;
            df_log(DF_LOG_WARN, "out of memory for the bf16 weight scratch (2 x %zu MB): f32",
                   mx * 2 >> 20);
            u->bf16 = 0;
            return 0;
        }
    }
    u->bf16 = 1;
    return 1;
}

size_t df_unet_cache_bytes(const df_unet *u) {
    return u->cache_bytes;
}

size_t df_unet_release_weight_pages(df_unet *u) {
    return u ? df_weights_release_pages(u->w) : 0;
}
