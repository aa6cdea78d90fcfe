// Tensor-parallel variants of the UNet layers (unet.c calls them when ctx->tp_size > 1).
#include "model/unet_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Tensor parallelism (ctx->tp_size > 1; spec §4.2, model/unet_tp.h): every rank of the group
// holds the whole image and computes its share of the split layers; each partial output is summed
// with ctx->ops->allreduce before its bias. The replicated layers run unet.c.

// The rank's state (sliced weights, scratch) for this context's rank and degree.
static df_status tp_state(df_unet *u, df_pctx *ctx) {
    if (u->tp && df_unet_tp_rank(u->tp) == ctx->tp_rank &&
        df_unet_tp_size(u->tp) == ctx->tp_size)
        return DF_OK;
    DF_FAIL_IF(ctx->row0 != 0 || ctx->row1 != ctx->H_full || !ctx->ops->allreduce, DF_ERR_ARG,
               "unet: a tensor-parallel context must cover the whole image and all-reduce");
    df_unet_tp_destroy(u->tp);
    u->tp = NULL;
    DF_TRY(df_unet_tp_check(&u->cfg, ctx->tp_size));
    return df_unet_tp_create(ctx->tp_rank, ctx->tp_size, u->cache_mb, &u->tp);
}

// Sums y [n] over the group (the partial output of a split layer), then y += bias [C].
static df_status tp_reduce_bias(df_unet *u, df_pctx *ctx, const char *name, float *y, size_t P,
                                int C, const float *bias) {
    DF_TRY(ctx->ops->allreduce(ctx, u->idx++, name, y, P * C));
    if (bias) df_tp_add_bias(y, NULL, bias, P, C);
    return DF_OK;
}

// 3x3 conv split by input channels (down/upsampler convs, conv_out): y [B][Ho][Wo][cout].
df_status df_unet_conv3_tp(df_unet *u, df_pctx *ctx, const uconv *c, const float *x, float *y,
                          int B, int H, int W, int stride) {
    DF_TRY(tp_state(u, ctx));
    const float *top = NULL, *bot = NULL;
    DF_TRY(ctx->ops->conv_halo(ctx, u->idx++, c->name, x, B, H, W, c->cin, 1, &top, &bot));
    int c0, c1;
    df_tp_share(c->cin, ctx->tp_size, ctx->tp_rank, &c0, &c1);
    const int cl = c1 - c0, Ho = stride == 1 ? H : (H + 1) / 2, Wo = stride == 1 ? W : (W + 1) / 2;
    float *xs; // [B][H][W][cl] this rank's input channels
    DF_TRY(df_unet_tp_buf(u->tp, 0, (size_t)B * H * W * cl, &xs));
    df_tp_slice_channels(xs, x, (size_t)B * H * W, c->cin, c0, c1);
    const float *w;
    DF_TRY(df_unet_tp_conv(u->tp, c->w.t, c->cout, c->cin, 0, c->cout, c0, c1, 0, &w));
    df_conv2d_algo(u->conv_algo, y, xs, NULL, NULL, w, NULL, B, H, W, cl, c->cout, 3, stride);
    return tp_reduce_bias(u, ctx, c->name, y, (size_t)B * Ho * Wo, c->cout, c->b.f);
}

// ResnetBlock2D with conv1 / time_emb_proj / norm2 on mid channels [m0, m1) and conv2 on those
// input channels; same contract as resnet().
df_status df_unet_resnet_tp(df_unet *u, df_pctx *ctx, const uresnet *r, const float *x, float *y,
                           int B, int H, int W) {
    DF_TRY(tp_state(u, ctx));
    const int T = H * W, ci = r->cin, co = r->cout, ted = u->cfg.time_embed_dim;
    const int G = u->cfg.norm_groups / ctx->tp_size; // norm2 groups of this rank
    const size_t P = (size_t)B * T;
    const float eps = u->cfg.norm_eps;
    int m0, m1;
    df_tp_share(co, ctx->tp_size, ctx->tp_rank, &m0, &m1);
    const int mc = m1 - m0;
    DF_TRY(df_unet_group_norm(u, ctx, &r->norm1, x, u->t1, B, T, eps, 1)); // t1 [P][cin] (all)
    const float *top = NULL, *bot = NULL, *w;
    DF_TRY(ctx->ops->conv_halo(ctx, u->idx++, r->conv1.name, u->t1, B, H, W, ci, 1, &top, &bot));
    DF_TRY(df_unet_tp_conv(u->tp, r->conv1.w.t, co, ci, m0, m1, 0, ci, 0, &w));
    float *t2 = u->t2; // [P][mc]
    df_conv2d_algo(u->conv_algo, t2, u->t1, NULL, NULL, w, r->conv1.b.f ? r->conv1.b.f + m0 : NULL,
                   B, H, W, ci, mc, 3, 1);
    DF_TRY(df_unet_tp_linear(u->tp, r->temb.w.t, co, ted, m0, m1, 0, 0, 0, ted, 0, &w));
    df_linear(u->tbuf, u->semb, w, r->temb.b.f ? r->temb.b.f + m0 : NULL, B, ted, mc, 0);
    df_tp_add_rows(t2, u->tbuf, P, T, mc);
    // norm2: G groups over the mc channels (+ SiLU)
    for (int b = 0; b < B; b++)
        df_group_norm_stats(u->gstats + (size_t)b * 2 * G, t2 + (size_t)b * T * mc, T, mc, G);
    DF_TRY(ctx->ops->gn_stats(ctx, u->idx++, r->norm2.name, u->gstats, B, G,
                              (double)T * (mc / G), u->gmean, u->gvar));
    for (int i = 0; i < B * G; i++) u->grstd[i] = 1.0f / sqrtf(u->gvar[i] + eps);
    for (int b = 0; b < B; b++)
        df_group_norm_apply(t2 + (size_t)b * T * mc, t2 + (size_t)b * T * mc, u->gmean + b * G,
                            u->grstd + b * G, r->norm2.g.f ? r->norm2.g.f + m0 : NULL,
                            r->norm2.b.f ? r->norm2.b.f + m0 : NULL, T, mc, G, 1);
    DF_TRY(ctx->ops->conv_halo(ctx, u->idx++, r->conv2.name, t2, B, H, W, mc, 1, &top, &bot));
    DF_TRY(df_unet_tp_conv(u->tp, r->conv2.w.t, co, co, 0, co, m0, m1, 1, &w));
    df_conv2d_algo(u->conv_algo, y, t2, NULL, NULL, w, NULL, B, H, W, mc, co, 3, 1); // partial
    DF_TRY(tp_reduce_bias(u, ctx, r->conv2.name, y, P, co, r->conv2.b.f));
    if (r->has_sc) // y += conv_shortcut(x), replicated
        df_linear(y, x, lin_w(&r->sc, u->wscr), r->sc.b.f, (int)P, ci, co, 1);
    else
        df_add(y, y, x, P * co);
    if (r->out_scale != 1.0f)
        for (size_t i = 0; i < P * co; i++) y[i] /= r->out_scale;
    return DF_OK;
}

// out [B][T][nh*d] (ld lo) = attention of the rank's nh heads; q [B][T] rows of ld lq, k/v
// [B][Tk] rows of ld lk starting at the rank's channel offset.
static void attention_tp(float *out, int lo, const float *q, int lq, const float *k,
                         const float *v, int lk, int B, int T, int Tk, int nh, int d) {
    if (nh == 0) return;
    for (int b = 0; b < B; b++)
        df_attention(out + (size_t)b * T * lo, lo, q + (size_t)b * T * lq, lq,
                     k + (size_t)b * Tk * lk, lk, v + (size_t)b * Tk * lk, lk, T, Tk, nh, d);
}

// BasicTransformerBlock with heads [h0, h1) and feed-forward features [f0, f1); same contract as
// transformer_block().
df_status df_unet_transformer_block_tp(df_unet *u, df_pctx *ctx, const ublock *k, float *s, int B,
                                      int T, int C, int heads) {
    DF_TRY(tp_state(u, ctx));
    const int P = B * T, d = C / heads, F = 4 * C, Pn = ctx->tp_size, rk = ctx->tp_rank;
    const float eps = u->cfg.layer_norm_eps;
    char nm2[NAME_CAP], nff[NAME_CAP]; // "<block>.attn2", "<block>.ff" (all-reduce labels)
    const int pre = (int)strlen(k->attn1) - 5;                 // k->attn1 ends in "attn1"
    snprintf(nm2, sizeof nm2, "%.*sattn2", pre, k->attn1);
    snprintf(nff, sizeof nff, "%.*sff", pre, k->attn1);
    int h0, h1, f0, f1;
    df_tp_share(heads, Pn, rk, &h0, &h1);
    df_tp_share(F, Pn, rk, &f0, &f1);
    const int nh = h1 - h0, c0 = h0 * d, c1 = h1 * d, cl = c1 - c0, Fl = f1 - f0;
    float *n = u->t1, *o = u->t2, *q = u->tq, *part; // n [P][C]; o, q, tk, tv [P][cl]
    DF_TRY(df_unet_tp_buf(u->tp, 1, (size_t)P * C, &part)); // [P][C] partial outputs
    const float *w;
    // self-attention on the rank's heads
    df_layer_norm(n, s, k->ln1.g.f, k->ln1.b.f, P, C, eps);
    DF_TRY(df_unet_tp_linear(u->tp, k->q1.w.t, C, C, c0, c1, 0, 0, 0, C, 0, &w));
    df_linear(q, n, w, NULL, P, C, cl, 0);
    DF_TRY(df_unet_tp_linear(u->tp, k->k1.w.t, C, C, c0, c1, 0, 0, 0, C, 0, &w));
    df_linear(u->tk, n, w, NULL, P, C, cl, 0);
    DF_TRY(df_unet_tp_linear(u->tp, k->v1.w.t, C, C, c0, c1, 0, 0, 0, C, 0, &w));
    df_linear(u->tv, n, w, NULL, P, C, cl, 0);
    const float *kf = NULL, *vf = NULL;
    int Tf = 0;
    DF_TRY(ctx->ops->attn_kv(ctx, u->idx++, k->attn1, u->tk, u->tv, B, T, cl, &kf, &vf, &Tf));
    attention_tp(o, cl, q, cl, kf, vf, cl, B, T, Tf, nh, d);
    DF_TRY(df_unet_tp_linear(u->tp, k->o1.w.t, C, C, 0, C, 0, 0, c0, c1, 0, &w));
    df_linear(part, o, w, NULL, P, cl, C, 0);
    DF_TRY(ctx->ops->allreduce(ctx, u->idx++, k->attn1, part, (size_t)P * C));
    df_tp_add_bias(s, part, k->o1.b.f, (size_t)P, C);
    // cross-attention: the rank's channels of the cached text K/V [B][Tt][C]
    df_layer_norm(n, s, k->ln2.g.f, k->ln2.b.f, P, C, eps);
    DF_TRY(df_unet_tp_linear(u->tp, k->q2.w.t, C, C, c0, c1, 0, 0, 0, C, 0, &w));
    df_linear(q, n, w, NULL, P, C, cl, 0);
    attention_tp(o, cl, q, cl, k->ktext + c0, k->vtext + c0, C, B, T, u->Tt, nh, d);
    DF_TRY(df_unet_tp_linear(u->tp, k->o2.w.t, C, C, 0, C, 0, 0, c0, c1, 0, &w));
    df_linear(part, o, w, NULL, P, cl, C, 0);
    DF_TRY(ctx->ops->allreduce(ctx, u->idx++, nm2, part, (size_t)P * C));
    df_tp_add_bias(s, part, k->o2.b.f, (size_t)P, C);
    // feed-forward on features [f0, f1): g [tc][2Fl] -> GEGLU -> [tc][Fl] -> part
    df_layer_norm(n, s, k->ln3.g.f, k->ln3.b.f, P, C, eps);
    const float *w1, *w2, *b1;
    DF_TRY(df_unet_tp_linear(u->tp, k->ff1.w.t, 2 * F, C, f0, f1, F + f0, F + f1, 0, C, 0, &w1));
    DF_TRY(df_unet_tp_linear(u->tp, k->ff2.w.t, C, F, 0, C, 0, 0, f0, f1, 1, &w2));
    DF_TRY(df_unet_tp_vec(u->tp, k->ff1.b.f, f0, f1, F + f0, F + f1, &b1));
    const int tc = (int)ff_chunk_tokens((size_t)P, C); // ffg holds [tc][2F] + [tc][F]
    float *g = u->ffg, *h = u->ffg + (size_t)tc * 2 * Fl;
    for (int t0 = 0; t0 < P; t0 += tc) {
        const int m = P - t0 < tc ? P - t0 : tc;
        df_linear(g, n + (size_t)t0 * C, w1, b1, m, C, 2 * Fl, 0);
        df_geglu(h, g, m, Fl);
        df_linear(part + (size_t)t0 * C, h, w2, NULL, m, Fl, C, 0);
    }
    DF_TRY(ctx->ops->allreduce(ctx, u->idx++, nff, part, (size_t)P * C));
    df_tp_add_bias(s, part, k->ff2.b.f, (size_t)P, C);
    return DF_OK;
}
