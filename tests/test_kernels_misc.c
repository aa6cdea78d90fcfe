// Tests for the non-GEMM kernels: norms, elementwise, softmax, attention, shape ops.
// Fast kernels vs their _ref twins on random inputs incl. odd sizes, plus invariants and known
// values (timestep embedding check values from the spec, gelu(1), softmax row sums, index maps).
#include "df_test.h"
#include "df_test_cpu.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// deterministic random numbers

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static float frand(void) { // uniform [-1, 1)
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

static float *rand_buf(size_t n, float scale, float offset) {
    float *p = df_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = offset + scale * frand();
    return p;
}

static float *copy_buf(const float *x, size_t n) {
    float *p = df_malloc((n ? n : 1) * sizeof(float));
    memcpy(p, x, n * sizeof(float));
    return p;
}

// ---------------------------------------------------------------------------------------------
// elementwise

typedef void (*unary_fn)(float *, const float *, size_t);

static void check_unary(const char *name, unary_fn fast, unary_fn ref, size_t n) {
    float *x = rand_buf(n, 12.0f, 0.0f);
    // special values at the front
    const float sp[] = {0.0f, -0.0f, 1.0f, -1.0f, 30.0f, -30.0f, 90.0f, -90.0f, -200.0f, 1e-20f};
    for (size_t i = 0; i < sizeof sp / sizeof sp[0] && i < n; i++) x[i] = sp[i];
    float *y = df_malloc(n * sizeof(float)), *yr = df_malloc(n * sizeof(float));
    fast(y, x, n);
    ref(yr, x, n);
    char label[64];
    snprintf(label, sizeof label, "%s n=%zu", name, n);
    df_allclose(y, yr, n, 1e-6f, 2e-6f, label);
    // in place
    float *xi = copy_buf(x, n);
    fast(xi, xi, n);
    snprintf(label, sizeof label, "%s in-place n=%zu", name, n);
    df_allclose(xi, y, n, 0.0f, 0.0f, label);
    df_free(x);
    df_free(y);
    df_free(yr);
    df_free(xi);
}

static void test_elementwise(void) {
    const size_t sizes[] = {1, 7, 10, 100003};
    for (size_t s = 0; s < 4; s++) {
        check_unary("silu", df_silu, df_silu_ref, sizes[s]);
        check_unary("gelu", df_gelu, df_gelu_ref, sizes[s]);
        check_unary("quick_gelu", df_quick_gelu, df_quick_gelu_ref, sizes[s]);
    }
    // known values
    float x[4] = {1.0f, -1.0f, 2.0f, 0.0f}, y[4], yr[4];
    df_gelu(y, x, 4);
    df_gelu_ref(yr, x, 4);
    EXPECT_LE_F64(fabs(y[0] - 0.8413447), 2e-7);
    EXPECT_LE_F64(fabs(yr[0] - 0.8413447), 1e-7);
    EXPECT_LE_F64(fabs(y[1] - -0.15865526), 2e-7);
    EXPECT_LE_F64(fabs(y[2] - 1.9544997), 3e-7);
    EXPECT_TRUE(y[3] == 0.0f);
    df_silu(y, x, 4);
    EXPECT_LE_F64(fabs(y[0] - 0.7310586), 1e-7);
    EXPECT_LE_F64(fabs(y[1] - -0.26894143), 1e-7);
    df_quick_gelu(y, x, 4);
    EXPECT_LE_F64(fabs(y[0] - 1.0 / (1.0 + exp(-1.702))), 1e-7);

    // GEGLU, odd sizes and in place
    const int dims[][2] = {{1, 1}, {7, 13}, {64, 640}};
    for (int d = 0; d < 3; d++) {
        const int T = dims[d][0], N = dims[d][1];
        const size_t n = (size_t)T * N;
        float *xg = rand_buf(2 * n, 4.0f, 0.0f);
        float *yg = df_malloc(n * sizeof(float)), *yg_ref = df_malloc(n * sizeof(float));
        df_geglu(yg, xg, T, N);
        df_geglu_ref(yg_ref, xg, T, N);
        df_allclose(yg, yg_ref, n, 1e-6f, 2e-6f, "geglu");
        // explicit: first half times gelu(second half)
        float g;
        df_gelu_ref(&g, &xg[N], 1);
        EXPECT_LE_F64(fabs(yg_ref[0] - xg[0] * g), 1e-6);
        df_geglu(xg, xg, T, N);
        df_allclose(xg, yg, n, 0.0f, 0.0f, "geglu in place");
        df_free(xg);
        df_free(yg);
        df_free(yg_ref);
    }

    // add
    {
        const size_t n = 200001;
        float *a = rand_buf(n, 3.0f, 0.0f), *b = rand_buf(n, 3.0f, 0.0f);
        float *y2 = df_malloc(n * sizeof(float));
        df_add(y2, a, b, n);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += y2[i] != a[i] + b[i];
        EXPECT_EQ_I64(bad, 0);
        df_add(a, a, b, n); // in place
        EXPECT_TRUE(memcmp(a, y2, n * sizeof(float)) == 0);
        df_free(a);
        df_free(b);
        df_free(y2);
    }
}

static void test_softmax(void) {
    const int shapes[][2] = {{1, 1}, {3, 7}, {5, 77}, {64, 4099}, {2, 1}};
    for (int s = 0; s < 5; s++) {
        const int R = shapes[s][0], N = shapes[s][1];
        const size_t n = (size_t)R * N;
        float *x = rand_buf(n, 20.0f, 0.0f);
        if (N > 3) { // huge spread in row 0: most entries underflow
            x[0] = 500.0f;
            x[1] = -INFINITY; // masked entry
            x[2] = 499.0f;
            x[3] = -1e30f;
        }
        float *xr = copy_buf(x, n);
        df_softmax(x, R, N);
        df_softmax_ref(xr, R, N);
        if (N > 3) {
            EXPECT_TRUE(x[1] == 0.0f && x[3] == 0.0f);
            EXPECT_LE_F64(fabs(x[0] - 1.0 / (1.0 + exp(-1.0))), 1e-6);
        }
        df_allclose(x, xr, n, 1e-7f, 5e-6f, "softmax");
        double worst = 0;
        for (int r = 0; r < R; r++) {
            double sum = 0;
            for (int i = 0; i < N; i++) sum += x[(size_t)r * N + i];
            if (fabs(sum - 1.0) > worst) worst = fabs(sum - 1.0);
        }
        EXPECT_LE_F64(worst, 2e-6);
        df_free(x);
        df_free(xr);
    }
}

// ---------------------------------------------------------------------------------------------
// norms

static void check_stats(const double *got, const double *want, int G, const char *label) {
    double worst = 0;
    for (int i = 0; i < 2 * G; i++) {
        double d = fabs(got[i] - want[i]) / (fabs(want[i]) + 1e-30);
        if (fabs(got[i] - want[i]) > 1e-12 && d > worst) worst = d;
    }
    df_test_checks++;
    if (!(worst <= 1e-11)) {
        fprintf(stderr, "%s: stats rel diff %.3g\n", label, worst);
        df_test_failures++;
    }
}

static void test_group_norm(void) {
    const int cases[][3] = {{7, 12, 4}, {1, 3, 1}, {5, 3, 3}, {1000, 320, 32}, {37, 64, 32}};
    for (int ci = 0; ci < 5; ci++) {
        const int T = cases[ci][0], C = cases[ci][1], G = cases[ci][2];
        const size_t n = (size_t)T * C;
        float *x = rand_buf(n, 2.0f, 0.5f);
        double *st = df_malloc(2 * G * sizeof(double)), *st_ref = df_malloc(2 * G * sizeof(double));
        df_group_norm_stats(st, x, T, C, G);
        df_group_norm_stats_ref(st_ref, x, T, C, G);
        check_stats(st, st_ref, G, "group_norm_stats");

        float *mean = df_malloc(G * sizeof(float)), *rstd = df_malloc(G * sizeof(float));
        df_group_norm_finalize(mean, rstd, st, G, (double)T * (C / G), 1e-5f);
        float *gamma = rand_buf(C, 1.0f, 1.0f), *beta = rand_buf(C, 1.0f, 0.0f);
        for (int silu = 0; silu < 2; silu++) {
            float *y = df_malloc(n * sizeof(float)), *yr = df_malloc(n * sizeof(float));
            df_group_norm_apply(y, x, mean, rstd, gamma, beta, T, C, G, silu);
            df_group_norm_apply_ref(yr, x, mean, rstd, gamma, beta, T, C, G, silu);
            df_allclose(y, yr, n, 2e-6f, 2e-6f, silu ? "group_norm_apply+silu" : "group_norm_apply");
            float *xi = copy_buf(x, n);
            df_group_norm_apply(xi, xi, mean, rstd, gamma, beta, T, C, G, silu);
            df_allclose(xi, y, n, 0.0f, 0.0f, "group_norm_apply in place");
            df_free(xi);
            df_free(y);
            df_free(yr);
        }
        // full GroupNorm on 2 images vs composed reference; gamma=1, beta=0 => per group
        // mean 0 and variance var/(var+eps)
        {
            const int B = 2;
            float *xb = rand_buf(B * n, 3.0f, -1.0f);
            float *yb = df_malloc(B * n * sizeof(float)), *yb_ref = df_malloc(B * n * sizeof(float));
            float *one = df_malloc(C * sizeof(float)), *zero = df_calloc(C, sizeof(float));
            for (int c = 0; c < C; c++) one[c] = 1.0f;
            df_group_norm(yb, xb, one, zero, B, T, C, G, 1e-5f, 0);
            for (int b = 0; b < B; b++) {
                df_group_norm_stats_ref(st_ref, xb + b * n, T, C, G);
                df_group_norm_finalize(mean, rstd, st_ref, G, (double)T * (C / G), 1e-5f);
                df_group_norm_apply_ref(yb_ref + b * n, xb + b * n, mean, rstd, one, zero, T, C,
                                        G, 0);
                if (T * (C / G) >= 100) { // invariant on the output statistics
                    df_group_norm_stats_ref(st_ref, yb + b * n, T, C, G);
                    const double cnt = (double)T * (C / G);
                    for (int g = 0; g < G; g++) {
                        EXPECT_LE_F64(fabs(st_ref[2 * g] / cnt), 1e-5);
                        EXPECT_LE_F64(fabs(st_ref[2 * g + 1] / cnt - 1.0), 1e-3);
                    }
                }
            }
            df_allclose(yb, yb_ref, B * n, 2e-6f, 2e-6f, "group_norm B=2");
            df_free(xb);
            df_free(yb);
            df_free(yb_ref);
            df_free(one);
            df_free(zero);
        }
        df_free(x);
        df_free(st);
        df_free(st_ref);
        df_free(mean);
        df_free(rstd);
        df_free(gamma);
        df_free(beta);
    }

    // band statistics: 3 bands of an image sum to the whole-image statistics
    {
        const int H = 30, W = 9, C = 64, G = 32;
        const int bands[4] = {0, 10, 19, 30};
        float *x = rand_buf((size_t)H * W * C, 1.5f, 3.0f);
        double whole[64], part[64], sum[64] = {0};
        df_group_norm_stats(whole, x, H * W, C, G);
        for (int b = 0; b < 3; b++) {
            df_group_norm_stats(part, x + (size_t)bands[b] * W * C,
                                (bands[b + 1] - bands[b]) * W, C, G);
            for (int i = 0; i < 2 * G; i++) sum[i] += part[i];
        }
        check_stats(sum, whole, G, "band stats sum");
        df_free(x);
    }

    // finalize known values: group of {1,2,3,4}: mean 2.5, var 1.25
    {
        const double st[4] = {10.0, 30.0, 8.0, 16.0}; // second group: four 2s -> var 0
        float mean[2], rstd[2];
        df_group_norm_finalize(mean, rstd, st, 2, 4.0, 1e-5f);
        EXPECT_LE_F64(fabs(mean[0] - 2.5), 0);
        EXPECT_LE_F64(fabs(rstd[0] - 1.0 / sqrt(1.25 + 1e-5)), 1e-7);
        EXPECT_LE_F64(fabs(rstd[1] - 1.0 / sqrt((double)1e-5f)), 1e-2);
        const double neg[2] = {4.0, 3.9999999}; // slightly negative variance -> clamped to 0
        df_group_norm_finalize(mean, rstd, neg, 1, 4.0, 1e-6f);
        EXPECT_LE_F64(fabs(rstd[0] - 1.0 / sqrt((double)1e-6f)), 1e-1);
    }
}

static void test_layer_norm(void) {
    const int cases[][2] = {{1, 1}, {7, 12}, {77, 768}, {300, 1280}, {3, 5}};
    for (int ci = 0; ci < 5; ci++) {
        const int T = cases[ci][0], C = cases[ci][1];
        const size_t n = (size_t)T * C;
        float *x = rand_buf(n, 2.0f, ci == 3 ? 100.0f : 0.0f); // large offset in one case
        float *gamma = rand_buf(C, 1.0f, 1.0f), *beta = rand_buf(C, 1.0f, 0.0f);
        float *y = df_malloc(n * sizeof(float)), *yr = df_malloc(n * sizeof(float));
        df_layer_norm(y, x, gamma, beta, T, C, 1e-5f);
        df_layer_norm_ref(yr, x, gamma, beta, T, C, 1e-5f);
        df_allclose(y, yr, n, 1e-6f, 1e-6f, "layer_norm");
        df_layer_norm(y, x, NULL, NULL, T, C, 1e-5f);
        df_layer_norm_ref(yr, x, NULL, NULL, T, C, 1e-5f);
        df_allclose(y, yr, n, 1e-6f, 1e-6f, "layer_norm no affine");
        if (C >= 12) { // row mean 0, variance ~1 without affine
            double s = 0, q = 0;
            for (int c = 0; c < C; c++) {
                s += y[c];
                q += (double)y[c] * y[c];
            }
            EXPECT_LE_F64(fabs(s / C), 1e-6);
            EXPECT_LE_F64(fabs(q / C - 1.0), 1e-3);
        }
        df_layer_norm(y, x, gamma, beta, T, C, 1e-5f);
        df_layer_norm(x, x, gamma, beta, T, C, 1e-5f); // in place
        df_allclose(x, y, n, 0.0f, 0.0f, "layer_norm in place");
        df_free(x);
        df_free(gamma);
        df_free(beta);
        df_free(y);
        df_free(yr);
    }
}

// ---------------------------------------------------------------------------------------------
// attention

// kboost > 0: key rows from Tk/2 on are multiplied by kboost, so later key tiles score far above
// the first tile's maximum (exercises the running-max reference and its exact rescaling path).
static void check_attention_k(int Tq, int Tk, int NH, int HS, int pad, float qscale,
                              float kboost) {
    const int D = NH * HS, ldq = D + pad, ldk = D + 2 * pad, ldv = D + 3 * pad, ldo = D + pad;
    float *q = rand_buf((size_t)Tq * ldq, qscale, 0.0f);
    float *k = rand_buf((size_t)Tk * ldk, 1.0f, 0.0f);
    float *v = rand_buf((size_t)Tk * ldv, 1.0f, 0.0f);
    float *o = rand_buf((size_t)Tq * ldo, 1.0f, 0.0f);
    if (kboost > 0)
        for (size_t i = (size_t)(Tk / 2) * ldk; i < (size_t)Tk * ldk; i++) k[i] *= kboost;
    float *o_ref = copy_buf(o, (size_t)Tq * ldo); // padding columns must stay untouched
    df_attention(o, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, NH, HS);
    df_attention_ref(o_ref, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, NH, HS);
    char label[96];
    snprintf(label, sizeof label, "attention Tq=%d Tk=%d NH=%d HS=%d pad=%d qs=%g kb=%g", Tq, Tk,
             NH, HS, pad, qscale, kboost);
    df_allclose(o, o_ref, (size_t)Tq * ldo, 2e-6f, 2e-5f, label);
    EXPECT_REL_L2(o, o_ref, (size_t)Tq * ldo, 2e-6, label);
    // out aliasing q (ldo == ldq)
    if (ldo == ldq) {
        float *qo = copy_buf(q, (size_t)Tq * ldq);
        df_attention(qo, ldq, qo, ldq, k, ldk, v, ldv, Tq, Tk, NH, HS);
        for (int i = 0; i < Tq; i++)
            for (int c = D; c < ldq; c++) qo[(size_t)i * ldq + c] = o[(size_t)i * ldo + c];
        df_allclose(qo, o, (size_t)Tq * ldo, 0.0f, 0.0f, "attention out aliasing q");
        df_free(qo);
    }
    df_free(q);
    df_free(k);
    df_free(v);
    df_free(o);
    df_free(o_ref);
}

static void check_attention(int Tq, int Tk, int NH, int HS, int pad, float qscale) {
    check_attention_k(Tq, Tk, NH, HS, pad, qscale, 0.0f);
}

static void test_attention(void) {
    for (int threads = 1; threads <= 2; threads++) {
        df_set_threads(threads);
        check_attention(7, 7, 3, 5, 0, 1.0f);
        check_attention(7, 7, 3, 5, 3, 1.0f);
        check_attention(1, 9, 2, 8, 1, 1.0f);
        check_attention(5, 1, 2, 4, 0, 1.0f);
        check_attention(1, 1, 1, 1, 0, 1.0f);
        check_attention(77, 77, 2, 64, 0, 1.0f);
        check_attention(300, 77, 2, 40, 5, 1.0f);    // cross-attention shape, 2 query blocks
        check_attention(257, 1100, 1, 32, 0, 1.0f);  // 3 key tiles, partial blocks
        check_attention(130, 1030, 2, 16, 2, 12.0f); // peaked softmax: running-max rescaling
        check_attention(40, 600, 1, 512, 0, 0.2f);   // VAE-like head size
        check_attention_k(70, 1200, 2, 16, 0, 1.0f, 8.0f);  // later tiles up to ~2^40 above
        check_attention_k(70, 1200, 2, 16, 0, 1.0f, 40.0f); // far above: rescaling path
        check_attention_k(33, 900, 1, 16, 0, 1.0f, -40.0f); // far below: underflow to 0
    }
    // called from inside a caller's parallel region: each thread's call must do all its items
    df_set_threads(2);
    {
        const int Tq = 100, Tk = 300, NH = 3, HS = 8, D = NH * HS;
        float *q = rand_buf((size_t)2 * Tq * D, 1.0f, 0.0f), *k = rand_buf((size_t)2 * Tk * D, 1.0f, 0.0f);
        float *v = rand_buf((size_t)2 * Tk * D, 1.0f, 0.0f);
        float *o = df_calloc((size_t)2 * Tq * D, sizeof(float));
        float *o_ref = df_calloc((size_t)2 * Tq * D, sizeof(float));
#pragma omp parallel for num_threads(2)
        for (int b = 0; b < 2; b++)
            df_attention(o + (size_t)b * Tq * D, D, q + (size_t)b * Tq * D, D,
                         k + (size_t)b * Tk * D, D, v + (size_t)b * Tk * D, D, Tq, Tk, NH, HS);
        for (int b = 0; b < 2; b++)
            df_attention_ref(o_ref + (size_t)b * Tq * D, D, q + (size_t)b * Tq * D, D,
                             k + (size_t)b * Tk * D, D, v + (size_t)b * Tk * D, D, Tq, Tk, NH, HS);
        df_allclose(o, o_ref, (size_t)2 * Tq * D, 2e-6f, 2e-5f, "attention inside omp parallel");
        df_free(q);
        df_free(k);
        df_free(v);
        df_free(o);
        df_free(o_ref);
    }
    df_set_threads(1);
}

// ---------------------------------------------------------------------------------------------
// shape ops

static float code4(int b, int y, int x, int c) {
    return (float)(((b * 64 + y) * 64 + x) * 64 + c);
}

static void test_shape(void) {
    // upsample: exact index map
    {
        const int B = 2, H = 3, W = 5, C = 7;
        float *x = df_malloc((size_t)B * H * W * C * sizeof(float));
        float *y = df_malloc((size_t)B * 4 * H * W * C * sizeof(float));
        for (int b = 0; b < B; b++)
            for (int yy = 0; yy < H; yy++)
                for (int xx = 0; xx < W; xx++)
                    for (int c = 0; c < C; c++)
                        x[(((size_t)b * H + yy) * W + xx) * C + c] = code4(b, yy, xx, c);
        df_upsample2x(y, x, B, H, W, C);
        int bad = 0;
        for (int b = 0; b < B; b++)
            for (int yy = 0; yy < 2 * H; yy++)
                for (int xx = 0; xx < 2 * W; xx++)
                    for (int c = 0; c < C; c++)
                        bad += y[(((size_t)b * 2 * H + yy) * 2 * W + xx) * C + c] !=
                               code4(b, yy / 2, xx / 2, c);
        EXPECT_EQ_I64(bad, 0);
        df_free(x);
        df_free(y);
    }
    // large upsample (parallel path) against a direct formula
    {
        const int B = 1, H = 16, W = 16, C = 320;
        const size_t n = (size_t)B * H * W * C;
        float *x = rand_buf(n, 1.0f, 0.0f), *y = df_malloc(4 * n * sizeof(float));
        df_upsample2x(y, x, B, H, W, C);
        int bad = 0;
        for (int yy = 0; yy < 2 * H; yy++)
            for (int xx = 0; xx < 2 * W; xx++)
                for (int c = 0; c < C; c++)
                    bad += y[((size_t)yy * 2 * W + xx) * C + c] !=
                           x[((size_t)(yy / 2) * W + xx / 2) * C + c];
        EXPECT_EQ_I64(bad, 0);
        df_free(x);
        df_free(y);
    }
    // concat: h first, then skip
    {
        const size_t P = 11;
        const int Ca = 3, Cb = 5;
        float *a = df_malloc(P * Ca * sizeof(float)), *b = df_malloc(P * Cb * sizeof(float));
        float *y = df_malloc(P * (Ca + Cb) * sizeof(float));
        for (size_t p = 0; p < P; p++) {
            for (int c = 0; c < Ca; c++) a[p * Ca + c] = (float)(p * 100 + c);
            for (int c = 0; c < Cb; c++) b[p * Cb + c] = (float)(p * 100 + 50 + c);
        }
        df_concat_channels(y, a, b, P, Ca, Cb);
        int bad = 0;
        for (size_t p = 0; p < P; p++)
            for (int c = 0; c < Ca + Cb; c++)
                bad += y[p * (Ca + Cb) + c] != (c < Ca ? (float)(p * 100 + c)
                                                         : (float)(p * 100 + 50 + c - Ca));
        EXPECT_EQ_I64(bad, 0);
        df_free(a);
        df_free(b);
        df_free(y);
    }
    // timestep embedding (spec check values, dim 320, flip_sin_to_cos, shift 0)
    {
        float e[321];
        df_timestep_embedding(e, 1.0f, 320, 1, 0.0f); // t = 1: arg_i = f_i
        EXPECT_TRUE(e[0] == cosf(1.0f));
        EXPECT_TRUE(e[160] == sinf(1.0f));
        EXPECT_TRUE(e[1] == cosf(0.94406086f));
        EXPECT_TRUE(e[161] == sinf(0.94406086f));
        EXPECT_TRUE(e[160 + 159] == sinf(1.0592537e-4f));
        EXPECT_LE_F64(fabs(e[160 + 159] - 1.0592537e-4), 1e-11);
        df_timestep_embedding(e, 999.0f, 320, 1, 0.0f);
        EXPECT_TRUE(e[0] == cosf(999.0f));
        EXPECT_TRUE(e[161] == sinf(999.0f * 0.94406086f));
        EXPECT_TRUE(e[159] == cosf(999.0f * 1.0592537e-4f));
        // no flip: sin first; odd dim: trailing zero; shift 1 divides by half-1
        df_timestep_embedding(e, 3.0f, 7, 0, 1.0f);
        EXPECT_TRUE(e[0] == sinf(3.0f) && e[3] == cosf(3.0f));
        EXPECT_TRUE(e[2] == sinf(3.0f * expf((float)-9.210340371976184 * 2.0f / 2.0f)));
        EXPECT_TRUE(e[6] == 0.0f);
    }
}

int main(int argc, char **argv) {
    df_test_select_cpu(argc, argv);
    df_set_threads(2);
    test_elementwise();
    test_softmax();
    test_group_norm();
    test_layer_norm();
    df_set_threads(1);
    test_group_norm();
    test_attention();
    test_shape();
    return df_test_result();
}
