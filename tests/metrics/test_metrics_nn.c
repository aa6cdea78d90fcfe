// src/metrics operators vs their plain-loop twins: convolutions of every geometry the metric
// networks use (11x11 stride 4, 5x5, 3x3 stride 2 unpadded, 1x7 / 7x1, 1x3 / 3x1, 1x1), output
// into a channel slice (ldy > cout), ReLU, 1 and 2 threads; max / average pooling; the two
// resizes on invariants (constant images stay constant, identity size is a copy).
#include "df_test.h"

#include "distrifuse/metrics.h"
#include "metrics/nn.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static unsigned g_seed = 1;
static float frand(void) {
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void conv_case(int H, int W, int cin, int cout, int kh, int kw, int sh, int sw, int ph,
                      int pw, int extra, int threads) {
    df_set_threads(threads);
    df_mconv c = {cin, cout, kh, kw, sh, sw, ph, pw, NULL, NULL};
    const size_t nw = (size_t)cout * cin * kh * kw;
    float *w = malloc(sizeof(float) * nw), *scale = malloc(sizeof(float) * cout);
    for (size_t i = 0; i < nw; i++) w[i] = frand() * 0.2f;
    for (int i = 0; i < cout; i++) scale[i] = 1.0f + 0.5f * frand();
    EXPECT_OK(df_mconv_pack(&c, w, scale));
    c.bias = df_malloc(sizeof(float) * cout);
    for (int i = 0; i < cout; i++) c.bias[i] = frand();
    float *x = malloc(sizeof(float) * (size_t)H * W * cin);
    for (size_t i = 0; i < (size_t)H * W * cin; i++) x[i] = frand();
    const int Ho = df_mconv_out(H, kh, sh, ph), Wo = df_mconv_out(W, kw, sw, pw);
    const int ldy = cout + extra;
    const size_t ny = (size_t)Ho * Wo * ldy;
    float *y = malloc(sizeof(float) * ny), *r = malloc(sizeof(float) * ny);
    for (size_t i = 0; i < ny; i++) y[i] = r[i] = 7.0f; // the slice outside cout stays
    for (int relu = 0; relu < 2; relu++) {
        df_mconv_forward(&c, y, ldy, x, H, W, relu);
        df_mconv_forward_ref(&c, r, ldy, x, H, W, relu);
        char lab[128];
        snprintf(lab, sizeof lab, "conv %dx%dx%d->%d k%dx%d s%dx%d p%dx%d ldy+%d relu%d t%d", H, W,
                 cin, cout, kh, kw, sh, sw, ph, pw, extra, relu, threads);
        df_allclose(y, r, ny, 1e-4f, 1e-4f, lab);
    }
    // the packed weight really holds w * scale: one output pixel by hand
    if (ph == 0 && pw == 0) {
        double s = c.bias[0];
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++)
                    s += (double)x[((size_t)ky * W + kx) * cin + ci] *
                         w[(((size_t)0 * cin + ci) * kh + ky) * kw + kx] * scale[0];
        if (s < 0) s = 0; // r holds the ReLU run
        EXPECT_LE_F64(fabs(s - r[0]), 1e-4 * (1 + fabs(s)));
    }
    df_mconv_release(&c);
    free(w), free(scale), free(x), free(y), free(r);
}

static void pool_case(int H, int W, int C, int k, int s, int p, int extra) {
    const int Ho = df_mconv_out(H, k, s, p), Wo = df_mconv_out(W, k, s, p), ld = C + extra;
    float *x = malloc(sizeof(float) * (size_t)H * W * C);
    for (size_t i = 0; i < (size_t)H * W * C; i++) x[i] = frand();
    float *y = calloc((size_t)Ho * Wo * ld, sizeof(float)),
          *r = calloc((size_t)Ho * Wo * ld, sizeof(float));
    df_maxpool(y, ld, x, H, W, C, k, s, p);
    df_maxpool_ref(r, ld, x, H, W, C, k, s, p);
    EXPECT_TRUE(memcmp(y, r, sizeof(float) * (size_t)Ho * Wo * ld) == 0);
    if (k == 3 && s == 1 && p == 1) {
        df_avgpool3_nopad(y, ld, x, H, W, C);
        df_avgpool3_nopad_ref(r, ld, x, H, W, C);
        df_allclose(y, r, (size_t)Ho * Wo * ld, 1e-6f, 1e-6f, "avgpool3");
        // corner: mean of 4 values (padding excluded)
        const float want = (x[0] + x[C] + x[(size_t)W * C] + x[(size_t)(W + 1) * C]) / 4.0f;
        EXPECT_LE_F64(fabs(y[0] - want), 1e-6);
    }
    free(x), free(y), free(r);
}

static void resize_invariants(void) {
    // constant image: both resizes give the constant (bicubic weights sum to 1, clip)
    const int H = 37, W = 53;
    uint8_t *img = malloc((size_t)H * W * 3);
    for (int i = 0; i < H * W; i++) img[i * 3] = 17, img[i * 3 + 1] = 200, img[i * 3 + 2] = 255;
    float *f = malloc(sizeof(float) * 299 * 299 * 3);
    df_cleanfid_resize(f, 299, 299, img, H, W);
    double md = 0;
    for (int i = 0; i < 299 * 299; i++) {
        md = fmax(md, fabs(f[i * 3] - 17.0f));
        md = fmax(md, fabs(f[i * 3 + 1] - 200.0f));
        md = fmax(md, fabs(f[i * 3 + 2] - 255.0f));
    }
    EXPECT_LE_F64(md, 1e-4);
    uint8_t *u = malloc((size_t)1024 * 1024 * 3);
    df_resize_bilinear_aa_u8(u, 1024, 1024, img, H, W);
    int bad = 0;
    for (int i = 0; i < 1024 * 1024; i++)
        bad += u[i * 3] != 17 || u[i * 3 + 1] != 200 || u[i * 3 + 2] != 255;
    EXPECT_EQ_I64(bad, 0);
    // identity size: a copy
    for (int i = 0; i < H * W * 3; i++) img[i] = (uint8_t)(i * 31);
    uint8_t *v = malloc((size_t)H * W * 3);
    df_resize_bilinear_aa_u8(v, H, W, img, H, W);
    EXPECT_TRUE(memcmp(v, img, (size_t)H * W * 3) == 0);
    float *g = malloc(sizeof(float) * H * W * 3);
    df_cleanfid_resize(g, H, W, img, H, W);
    bad = 0;
    for (int i = 0; i < H * W * 3; i++) bad += g[i] != (float)img[i];
    EXPECT_EQ_I64(bad, 0);
    // 2x upscale of a 2-pixel ramp: the torch bilinear weights 0.75 / 0.25, clamped at borders
    uint8_t ramp[2 * 3] = {0, 0, 0, 100, 100, 100}, out4[4 * 3];
    df_resize_bilinear_aa_u8(out4, 1, 4, ramp, 1, 2);
    EXPECT_EQ_I64(out4[0], 0);
    EXPECT_EQ_I64(out4[3], 25);
    EXPECT_EQ_I64(out4[6], 75);
    EXPECT_EQ_I64(out4[9], 100);
    // rounding: {2, 5} -> 2.75 -> 3, 4.25 -> 4; ties {1, 3} -> 1.5 -> 2, 2.5 -> 2 (half to even)
    uint8_t r2[2 * 3] = {2, 2, 2, 5, 5, 5};
    df_resize_bilinear_aa_u8(out4, 1, 4, r2, 1, 2);
    EXPECT_EQ_I64(out4[3], 3);
    EXPECT_EQ_I64(out4[6], 4);
    uint8_t t2[2 * 3] = {1, 1, 1, 3, 3, 3};
    df_resize_bilinear_aa_u8(out4, 1, 4, t2, 1, 2);
    EXPECT_EQ_I64(out4[3], 2);
    EXPECT_EQ_I64(out4[6], 2);
    free(img), free(f), free(u), free(v), free(g);
}

static void psnr_checks(void) {
    uint8_t a[300], b[300];
    for (int i = 0; i < 300; i++) a[i] = b[i] = (uint8_t)i;
    EXPECT_TRUE(isinf(df_psnr_u8(a, b, 300)) && df_psnr_u8(a, b, 300) > 0);
    b[7] ^= 1; // one value off by 1/255: mse = (1/255)^2 / 300
    const double want = -10.0 * log10((1.0 / 255.0) * (1.0 / 255.0) / 300.0);
    EXPECT_LE_F64(fabs(df_psnr_u8(a, b, 300) - want), 1e-4);
    const float v[3] = {1.0f, 2.0f, INFINITY};
    EXPECT_TRUE(isinf(df_mean_f32(v, 3)));
    EXPECT_LE_F64(fabs(df_mean_f32(v, 2) - 1.5), 1e-7);
}

int main(void) {
    for (int t = 1; t <= 2; t++) {
        conv_case(67, 61, 3, 64, 11, 11, 4, 4, 2, 2, 0, t);     // AlexNet conv1
        conv_case(15, 13, 64, 48, 5, 5, 1, 1, 2, 2, 5, t);      // 5x5 pad 2, into a slice
        conv_case(21, 19, 16, 24, 3, 3, 2, 2, 0, 0, 0, t);      // 3x3 stride 2 unpadded
        conv_case(17, 17, 20, 24, 1, 7, 1, 1, 0, 3, 3, t);      // 1x7
        conv_case(17, 17, 20, 24, 7, 1, 1, 1, 3, 0, 0, t);      // 7x1
        conv_case(8, 8, 32, 40, 1, 3, 1, 1, 0, 1, 8, t);        // 1x3
        conv_case(8, 8, 32, 40, 3, 1, 1, 1, 1, 0, 0, t);        // 3x1
        conv_case(35, 35, 48, 64, 1, 1, 1, 1, 0, 0, 16, t);     // 1x1 direct GEMM
        conv_case(149, 149, 32, 32, 3, 3, 1, 1, 0, 0, 0, t);    // many rows: chunked in parallel
        conv_case(5, 5, 3, 7, 3, 3, 1, 1, 1, 1, 0, t);          // tiny
    }
    df_set_threads(2);
    pool_case(147, 147, 64, 3, 2, 0, 0);
    pool_case(17, 17, 24, 3, 2, 0, 8);
    pool_case(8, 8, 40, 3, 1, 1, 0);
    pool_case(35, 35, 33, 3, 1, 1, 7);
    pool_case(2, 3, 5, 3, 1, 1, 0);
    resize_invariants();
    psnr_checks();
    return df_test_result();
}
