// A small synthetic "UNet" for the runtime tests, written from the kernels and the patch
// context exactly as the real UNet uses it: conv_in from the full input, halo convs (stride 1 and
// 2, and after a nearest upsample), GroupNorm through gn_stats, self-attention through attn_kv,
// a skip connection. One downsampling (n_down = 1).
//
//   x [B][H][W][4]
//   h0 = conv_in(x) + 0.01 t            3x3 4->16           (conv_halo "conv_in")
//   a  = SiLU(GN_4(h0))                                    (gn_stats "norm1")
//   h1 = conv1(a)                       3x3 16->16          (conv_halo "conv1")
//   h2 = down(h1)                       3x3 s2 16->32       (conv_halo "down")
//   n  = GN_4(h2)                                          (gn_stats "norm2")
//   h3 = h2 + out(attn(q(n), k(n), v(n)))  2 heads x 16     (attn_kv "attn1")
//   h4 = up(upsample2x(h3)) + h1        3x3 32->16          (conv_halo "up")
//   y  = conv_out(SiLU(GN_4(h4)))       3x3 16->4           (gn_stats "norm_out", conv "conv_out")
#ifndef DF_TEST_SYNTH_H
#define DF_TEST_SYNTH_H

#include "kernels/kernels.h"
#include "model/pctx.h"
#include "runtime/dist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SY_C0 16
#define SY_C1 32
#define SY_G 4
#define SY_HEADS 2

typedef struct synth {
    float *w_in, *b_in, *w1, *b1, *wd, *bd, *wu, *bu, *wo, *bo; // packed convs + biases
    float *g1, *be1, *g2, *be2, *g3, *be3;                      // GN affine
    float *wq, *wk, *wv, *wout, *bout;                          // attention [C][C]
    // scratch
    float *s[8];
    size_t s_n;
} synth;

static uint32_t sy_seed = 12345u;
static float sy_rand(void) { // uniform in [-1, 1)
    sy_seed = sy_seed * 1664525u + 1013904223u;
    return (float)((sy_seed >> 8) * (1.0 / 8388608.0)) - 1.0f;
}

static float *sy_conv(int cout, int cin, float scale) {
    float *raw = malloc(sizeof(float) * (size_t)cout * cin * 9);
    for (int i = 0; i < cout * cin * 9; i++) raw[i] = sy_rand() * scale / sqrtf(cin * 9.0f);
    float *p = df_malloc(sizeof(float) * (size_t)cout * cin * 9);
    df_conv_weight_pack(p, raw, DF_DTYPE_F32, cout, cin, 3);
    free(raw);
    return p;
}

static float *sy_vec(int n, float base, float scale) {
    float *v = df_malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) v[i] = base + scale * sy_rand();
    return v;
}

static void synth_init(synth *m) {
    memset(m, 0, sizeof *m);
    sy_seed = 12345u;
    m->w_in = sy_conv(SY_C0, 4, 1.5f), m->b_in = sy_vec(SY_C0, 0.1f, 0.1f);
    m->w1 = sy_conv(SY_C0, SY_C0, 1.5f), m->b1 = sy_vec(SY_C0, 0.0f, 0.1f);
    m->wd = sy_conv(SY_C1, SY_C0, 1.5f), m->bd = sy_vec(SY_C1, 0.0f, 0.1f);
    m->wu = sy_conv(SY_C0, SY_C1, 1.5f), m->bu = sy_vec(SY_C0, 0.0f, 0.1f);
    m->wo = sy_conv(4, SY_C0, 1.0f), m->bo = sy_vec(4, 0.0f, 0.05f);
    m->g1 = sy_vec(SY_C0, 1.0f, 0.1f), m->be1 = sy_vec(SY_C0, 0.0f, 0.1f);
    m->g2 = sy_vec(SY_C1, 1.0f, 0.1f), m->be2 = sy_vec(SY_C1, 0.0f, 0.1f);
    m->g3 = sy_vec(SY_C0, 1.0f, 0.1f), m->be3 = sy_vec(SY_C0, 0.0f, 0.1f);
    m->wq = sy_vec(SY_C1 * SY_C1, 0.0f, 2.0f / sqrtf(SY_C1));
    m->wk = sy_vec(SY_C1 * SY_C1, 0.0f, 2.0f / sqrtf(SY_C1));
    m->wv = sy_vec(SY_C1 * SY_C1, 0.0f, 1.0f / sqrtf(SY_C1));
    m->wout = sy_vec(SY_C1 * SY_C1, 0.0f, 1.0f / sqrtf(SY_C1));
    m->bout = sy_vec(SY_C1, 0.0f, 0.05f);
}

static void synth_free(synth *m) {
    float *all[] = {m->w_in, m->b_in, m->w1, m->b1, m->wd, m->bd, m->wu, m->bu, m->wo, m->bo,
                    m->g1,   m->be1,  m->g2, m->be2, m->g3, m->be3, m->wq, m->wk, m->wv,
                    m->wout, m->bout};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) df_free(all[i]);
    for (int i = 0; i < 8; i++) df_free(m->s[i]);
}

// GroupNorm through the context: x [B][T][C] in place (+ SiLU).
static df_status sy_gn(df_pctx *ctx, int idx, const char *name, float *x, int B, int T, int C,
                       const float *g, const float *be, int silu) {
    double stats[2 * 2 * SY_G] = {0};
    float mean[2 * SY_G], var[2 * SY_G], rstd[2 * SY_G];
    for (int b = 0; b < B; b++) df_group_norm_stats(stats + 2 * SY_G * b, x + (size_t)b * T * C, T, C, SY_G);
    DF_TRY(ctx->ops->gn_stats(ctx, idx, name, stats, B, SY_G, (double)T * (C / SY_G), mean, var));
    for (int i = 0; i < B * SY_G; i++) rstd[i] = 1.0f / sqrtf(var[i] + 1e-5f);
    for (int b = 0; b < B; b++)
        df_group_norm_apply(x + (size_t)b * T * C, x + (size_t)b * T * C, mean + SY_G * b,
                            rstd + SY_G * b, g, be, T, C, SY_G, silu);
    return DF_OK;
}

static df_status sy_conv_run(df_pctx *ctx, int idx, const char *name, float *y, const float *x,
                             const float *w, const float *bias, int B, int H, int W, int cin,
                             int cout, int stride) {
    const float *top, *bot;
    DF_TRY(ctx->ops->conv_halo(ctx, idx, name, x, B, H, W, cin, 1, &top, &bot));
    df_conv2d(y, x, top, stride == 2 ? NULL : bot, w, bias, B, H, W, cin, cout, 3, stride);
    return DF_OK;
}

// df_dist_model.forward
static df_status synth_forward(void *self, df_pctx *ctx, const float *x, int B,
                               const int *images, int Hfull, int W, float t, float *y) {
    synth *m = self;
    int H = ctx->row1 - ctx->row0; // band rows
    size_t px = (size_t)B * H * W;
    if (m->s_n < px * SY_C1) {
        for (int i = 0; i < 8; i++) {
            df_free(m->s[i]);
            m->s[i] = df_malloc(sizeof(float) * px * SY_C1);
        }
        m->s_n = px * SY_C1;
    }
    float *h0 = m->s[0], *a = m->s[1], *h1 = m->s[2], *h2 = m->s[3], *n = m->s[4];
    float *q = m->s[5], *k = m->s[6], *v = m->s[7];
    int idx = 0;
    DF_TRY(sy_conv_run(ctx, idx++, "conv_in", h0, x, m->w_in, m->b_in, B, H, W, 4, SY_C0, 1));
    for (size_t i = 0; i < px * SY_C0; i++) h0[i] += 0.01f * t;
    memcpy(a, h0, sizeof(float) * px * SY_C0);
    DF_TRY(sy_gn(ctx, idx++, "norm1", a, B, H * W, SY_C0, m->g1, m->be1, 1));
    DF_TRY(sy_conv_run(ctx, idx++, "conv1", h1, a, m->w1, m->b1, B, H, W, SY_C0, SY_C0, 1));
    int H2 = H / 2, W2 = W / 2, T2 = H2 * W2;
    DF_TRY(sy_conv_run(ctx, idx++, "down", h2, h1, m->wd, m->bd, B, H, W, SY_C0, SY_C1, 2));
    memcpy(n, h2, sizeof(float) * (size_t)B * T2 * SY_C1);
    DF_TRY(sy_gn(ctx, idx++, "norm2", n, B, T2, SY_C1, m->g2, m->be2, 0));
    df_linear(q, n, m->wq, NULL, B * T2, SY_C1, SY_C1, 0);
    df_linear(k, n, m->wk, NULL, B * T2, SY_C1, SY_C1, 0);
    df_linear(v, n, m->wv, NULL, B * T2, SY_C1, SY_C1, 0);
    const float *kf, *vf;
    int Tf;
    DF_TRY(ctx->ops->attn_kv(ctx, idx++, "attn1", k, v, B, T2, SY_C1, &kf, &vf, &Tf));
    float *att = a; // reuse (B*T2*C1 <= px*C0 since C1 = 2*C0 and T2 = px/4)
    for (int b = 0; b < B; b++)
        df_attention(att + (size_t)b * T2 * SY_C1, SY_C1, q + (size_t)b * T2 * SY_C1, SY_C1,
                     kf + (size_t)b * Tf * SY_C1, SY_C1, vf + (size_t)b * Tf * SY_C1, SY_C1, T2,
                     Tf, SY_HEADS, SY_C1 / SY_HEADS);
    df_linear(h2, att, m->wout, m->bout, B * T2, SY_C1, SY_C1, 1); // h3 = h2 + out(...)
    df_upsample2x(n, h2, B, H2, W2, SY_C1);                         // [B][H][W][C1]
    DF_TRY(sy_conv_run(ctx, idx++, "up", h0, n, m->wu, m->bu, B, H, W, SY_C1, SY_C0, 1));
    df_add(h0, h0, h1, px * SY_C0);
    DF_TRY(sy_gn(ctx, idx++, "norm_out", h0, B, H * W, SY_C0, m->g3, m->be3, 1));
    DF_TRY(sy_conv_run(ctx, idx++, "conv_out", y, h0, m->wo, m->bo, B, H, W, SY_C0, 4, 1));
    (void)images;
    (void)Hfull;
    return DF_OK;
}

static df_dist_model synth_model(synth *m) {
    df_dist_model dm;
    dm.self = m;
    dm.in_channels = 4;
    dm.out_channels = 4;
    dm.n_down = 1;
    dm.forward = synth_forward;
    return dm;
}

#endif // DF_TEST_SYNTH_H
