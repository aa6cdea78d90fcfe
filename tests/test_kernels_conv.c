// Tests of the GEMM kernels: df_conv2d / df_conv2d_ref, df_linear / df_linear_ref,
// df_convert_to_f32, df_conv_weight_pack.
#include "df_test.h"
#include "df_test_cpu.h"
#include "kernels/kernels.h"

// ---------------------------------------------------------------------------------------------
// Deterministic random numbers (xorshift), uniform in [-1, 1).
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static float *rand_buf(size_t n) {
    float *p = df_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = frand();
    return p;
}
static float *const_buf(size_t n, float v) {
    float *p = df_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}
static int out_ext(int n, int stride) {
    return stride == 1 ? n : (n + 1) / 2;
}

// ---------------------------------------------------------------------------------------------
// Convert and pack

static void test_convert(void) {
    // Known bit patterns (f16 / bf16), read from an unaligned address.
    const uint16_t h16[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x0000, 0x8000, 0x3555, 0x7C00};
    const float w16[] = {1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f, 0.0f, -0.0f,
                         0.333251953125f, INFINITY};
    const uint16_t hb[] = {0x3F80, 0xC049, 0x4049, 0x0000, 0x7F80, 0x3E80};
    const float wb[] = {1.0f, -3.140625f, 3.140625f, 0.0f, INFINITY, 0.25f};
    unsigned char raw[64];
    float got[8];

    memcpy(raw + 1, h16, sizeof h16);
    df_convert_to_f32(got, raw + 1, DF_DTYPE_F16, 8);
    for (int i = 0; i < 8; i++) EXPECT_TRUE(got[i] == w16[i]);
    EXPECT_TRUE(signbit(got[5]));

    memcpy(raw + 3, hb, sizeof hb);
    df_convert_to_f32(got, raw + 3, DF_DTYPE_BF16, 6);
    for (int i = 0; i < 6; i++) EXPECT_TRUE(got[i] == wb[i]);

    const float f32[] = {1.5f, -0.0f, 3.0e38f, -1.0e-40f};
    memcpy(raw + 2, f32, sizeof f32);
    df_convert_to_f32(got, raw + 2, DF_DTYPE_F32, 4);
    EXPECT_TRUE(memcmp(got, f32, sizeof f32) == 0);
    df_convert_to_f32(got, raw, DF_DTYPE_F16, 0); // n = 0 is a no-op

    // Random finite bit patterns, n not a multiple of the SIMD width, unaligned source.
    enum { NR = 37 };
    uint16_t r16[NR];
    unsigned char rraw[2 * NR + 1];
    float g16[NR], gb16[NR];
    for (int i = 0; i < NR; i++) {
        uint16_t h;
        do h = (uint16_t)(frand() * 32768.0f + 32768.0f);
        while ((h & 0x7c00) == 0x7c00); // skip inf/NaN (NaN payload rules differ)
        r16[i] = h;
    }
    memcpy(rraw + 1, r16, sizeof r16);
    df_convert_to_f32(g16, rraw + 1, DF_DTYPE_F16, NR);
    df_convert_to_f32(gb16, rraw + 1, DF_DTYPE_BF16, NR);
    int bad = 0;
    for (int i = 0; i < NR; i++) {
        if (g16[i] != df_f16_to_f32(r16[i])) bad++;
        uint32_t u = (uint32_t)r16[i] << 16;
        float fb;
        memcpy(&fb, &u, 4);
        if (memcmp(&gb16[i], &fb, 4) != 0) bad++;
    }
    EXPECT_EQ_I64(bad, 0);
}

static void test_pack(void) {
    const int cout = 3, cin = 2, k = 3;
    const size_t n = (size_t)cout * cin * k * k;
    float src[54];
    uint16_t s16[54], sb16[54];
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    size_t s = (((size_t)co * cin + ci) * k + ky) * k + kx;
                    src[s] = (float)(co * 100 + ci * 10 + ky * 3 + kx); // exact in f16
                    s16[s] = df_f32_to_f16(src[s]);
                    sb16[s] = df_f32_to_bf16(src[s]);
                }
    float d32[54], d16[54], db16[54];
    df_conv_weight_pack(d32, src, DF_DTYPE_F32, cout, cin, k);
    df_conv_weight_pack(d16, s16, DF_DTYPE_F16, cout, cin, k);
    df_conv_weight_pack(db16, sb16, DF_DTYPE_BF16, cout, cin, k);
    int bad = 0;
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    size_t s = (((size_t)co * cin + ci) * k + ky) * k + kx;
                    size_t d = (((size_t)ky * k + kx) * cin + ci) * cout + co;
                    if (d32[d] != src[s] || d16[d] != src[s]) bad++;
                    if (db16[d] != df_bf16_to_f32(sb16[s])) bad++;
                }
    EXPECT_EQ_I64(bad, 0);
    // k = 1 is a plain transpose [Cout][Cin] -> [Cin][Cout].
    const float w1[6] = {1, 2, 3, 4, 5, 6}; // [2][3]
    float p1[6];
    df_conv_weight_pack(p1, w1, DF_DTYPE_F32, 2, 3, 1);
    const float want1[6] = {1, 4, 2, 5, 3, 6};
    EXPECT_TRUE(memcmp(p1, want1, sizeof p1) == 0);
    (void)n;

    // More output channels than one packing block (37 > 32), f16 source, odd sizes.
    const int co2 = 37, ci2 = 5;
    const size_t n2 = (size_t)co2 * ci2 * 9;
    uint16_t *s2 = df_malloc(n2 * sizeof(uint16_t));
    float *d2 = df_malloc(n2 * sizeof(float));
    for (size_t i = 0; i < n2; i++) s2[i] = df_f32_to_f16(frand());
    df_conv_weight_pack(d2, s2, DF_DTYPE_F16, co2, ci2, 3);
    bad = 0;
    for (int co = 0; co < co2; co++)
        for (int ci = 0; ci < ci2; ci++)
            for (int t = 0; t < 9; t++)
                if (d2[((size_t)t * ci2 + ci) * co2 + co] !=
                    df_f16_to_f32(s2[((size_t)co * ci2 + ci) * 9 + t]))
                    bad++;
    EXPECT_EQ_I64(bad, 0);
    df_free(s2);
    df_free(d2);
}

// The fast conversion / packing against their plain-loop twins, bit for bit: every dtype, sizes
// around the SIMD widths (8, 16) and packing blocks, unaligned sources.
static void test_convert_pack_vs_ref(void) {
    const df_dtype dts[3] = {DF_DTYPE_F32, DF_DTYPE_F16, DF_DTYPE_BF16};
    int bad = 0, cases = 0;
    for (int di = 0; di < 3; di++) {
        const df_dtype dt = dts[di];
        const size_t es = df_dtype_size(dt);
        const size_t ns[] = {1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 257};
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
            const size_t n = ns[a];
            unsigned char *raw = df_malloc(n * es + 3);
            for (size_t i = 0; i < n; i++) {
                const float f = frand() * 4.0f;
                if (dt == DF_DTYPE_F32) memcpy(raw + 3 + 4 * i, &f, 4);
                else {
                    const uint16_t h = dt == DF_DTYPE_F16 ? df_f32_to_f16(f) : df_f32_to_bf16(f);
                    memcpy(raw + 3 + 2 * i, &h, 2);
                }
            }
            float *g = df_malloc(n * sizeof(float)), *w = df_malloc(n * sizeof(float));
            df_convert_to_f32(g, raw + 3, dt, n);
            df_convert_to_f32_ref(w, raw + 3, dt, n);
            bad += memcmp(g, w, n * sizeof(float)) != 0;
            cases++;
            df_free(g);
            df_free(w);
            df_free(raw);
        }
        const int shapes[][3] = {{1, 1, 1}, {16, 16, 1}, {17, 5, 3}, {32, 16, 3}, {40, 70, 3},
                                 {48, 33, 1}, {64, 8, 3}};
        for (size_t a = 0; a < sizeof shapes / sizeof shapes[0]; a++) {
            const int co = shapes[a][0], ci = shapes[a][1], k = shapes[a][2];
            const size_t n = (size_t)co * ci * k * k;
            unsigned char *raw = df_malloc(n * es);
            for (size_t i = 0; i < n; i++) {
                const float f = frand();
                if (dt == DF_DTYPE_F32) memcpy(raw + 4 * i, &f, 4);
                else {
                    const uint16_t h = dt == DF_DTYPE_F16 ? df_f32_to_f16(f) : df_f32_to_bf16(f);
                    memcpy(raw + 2 * i, &h, 2);
                }
            }
            float *g = df_malloc(n * sizeof(float)), *w = df_malloc(n * sizeof(float));
            float *r = df_malloc(n * sizeof(float));
            df_conv_weight_pack(g, raw, dt, co, ci, k);
            df_conv_weight_pack_ref(w, raw, dt, co, ci, k);
            bad += memcmp(g, w, n * sizeof(float)) != 0;
            // ranges: [0, co/3), [co/3, co) written separately give the same array
            memset(r, 0, n * sizeof(float));
            df_conv_weight_pack_range(r, raw, dt, co, ci, k, 0, co / 3);
            df_conv_weight_pack_range(r, raw, dt, co, ci, k, co / 3, co);
            bad += memcmp(r, w, n * sizeof(float)) != 0;
            cases += 2;
            df_free(g);
            df_free(w);
            df_free(r);
            df_free(raw);
        }
    }
    printf("  convert/pack vs _ref: %d cases, %d differ\n", cases, bad);
    EXPECT_EQ_I64(bad, 0);
}

// ---------------------------------------------------------------------------------------------
// Conv: hand-computed tiny cases through both kernels

static void test_conv_hand(void) {
    // PyTorch weight [1][1][3][3] = 1..9 -> packed is the same order for Cin = Cout = 1.
    float w[9];
    for (int i = 0; i < 9; i++) w[i] = (float)(i + 1);
    const float bias = 0.5f;
    const float x2[4] = {1, 2, 3, 4}; // 2x2
    const float top[2] = {10, 20};
    float y[4];
    for (int fast = 0; fast < 2; fast++) {
        void (*conv)(float *, const float *, const float *, const float *, const float *,
                     const float *, int, int, int, int, int, int, int) =
            fast ? df_conv2d : df_conv2d_ref;
        conv(y, x2, NULL, NULL, w, &bias, 1, 2, 2, 1, 1, 3, 1);
        const float want[4] = {77.5f, 67.5f, 47.5f, 37.5f};
        df_allclose(y, want, 4, 1e-5f, 1e-6f, fast ? "hand s1 fast" : "hand s1 ref");
        conv(y, x2, top, NULL, w, &bias, 1, 2, 2, 1, 1, 3, 1);
        const float want_top[4] = {157.5f, 117.5f, 47.5f, 37.5f};
        df_allclose(y, want_top, 4, 1e-5f, 1e-6f, fast ? "hand top fast" : "hand top ref");
        // bottom halo row [100, 1000] below the 2x2 band adds w[2][*] taps to output row 1.
        const float bot[2] = {100, 1000};
        conv(y, x2, NULL, bot, w, NULL, 1, 2, 2, 1, 1, 3, 1);
        // (1,0): 47 + w[2][1]*100 + w[2][2]*1000 = 47 + 800 + 9000; (1,1): 37 + 700 + 8000
        const float want_bot[4] = {77.0f, 67.0f, 9847.0f, 8737.0f};
        df_allclose(y, want_bot, 4, 1e-5f, 1e-6f, fast ? "hand bot fast" : "hand bot ref");
        // stride 2 on 3x3 = 1..9 -> 2x2
        float x3[9];
        for (int i = 0; i < 9; i++) x3[i] = (float)(i + 1);
        conv(y, x3, NULL, NULL, w, NULL, 1, 3, 3, 1, 1, 3, 2);
        const float want_s2[4] = {94.0f, 106.0f, 106.0f, 94.0f};
        df_allclose(y, want_s2, 4, 1e-5f, 1e-6f, fast ? "hand s2 fast" : "hand s2 ref");
        // k = 1: 2 channels -> 1, w = [2, -1] per pixel, bias 0.5
        const float wk1[2] = {2.0f, -1.0f};
        conv(y, x2, NULL, NULL, wk1, &bias, 1, 1, 2, 2, 1, 1, 1);
        const float want_k1[2] = {2 * 1 - 2 + 0.5f, 2 * 3 - 4 + 0.5f};
        df_allclose(y, want_k1, 2, 1e-6f, 1e-6f, fast ? "hand k1 fast" : "hand k1 ref");
    }
}

// ---------------------------------------------------------------------------------------------
// Conv: fast vs reference on random inputs

static void conv_case(int B, int H, int W, int cin, int cout, int k, int stride, int use_top,
                      int use_bot, int use_bias) {
    const int pad = k / 2;
    const int Ho = out_ext(H, stride), Wo = out_ext(W, stride);
    float *x = rand_buf((size_t)B * H * W * cin);
    float *top = use_top && pad ? rand_buf((size_t)B * pad * W * cin) : NULL;
    float *bot = use_bot && pad ? rand_buf((size_t)B * pad * W * cin) : NULL;
    float *w = rand_buf((size_t)k * k * cin * cout);
    float *bias = use_bias ? rand_buf((size_t)cout) : NULL;
    const size_t ny = (size_t)B * Ho * Wo * cout;
    float *y = const_buf(ny, NAN); // every output element must be written
    float *yr = const_buf(ny, NAN);
    df_conv2d(y, x, top, bot, w, bias, B, H, W, cin, cout, k, stride);
    df_conv2d_ref(yr, x, top, bot, w, bias, B, H, W, cin, cout, k, stride);
    char label[160];
    snprintf(label, sizeof label, "conv B%d H%d W%d %d->%d k%d s%d top%d bot%d bias%d", B, H, W,
             cin, cout, k, stride, top != NULL, bot != NULL, use_bias);
    if (!df_allclose(y, yr, ny, 1e-4f, 1e-4f, label)) fprintf(stderr, "  (%s)\n", label);
    df_free(x);
    df_free(top);
    df_free(bot);
    df_free(w);
    df_free(bias);
    df_free(y);
    df_free(yr);
}

static void test_conv_random(void) {
    // Odd, non-square sizes; k 1/3; halos NULL / non-NULL; bias NULL / non-NULL.
    for (int ht = 0; ht < 2; ht++)
        for (int hb = 0; hb < 2; hb++) {
            conv_case(2, 7, 5, 3, 5, 3, 1, ht, hb, 1);
            conv_case(1, 5, 7, 5, 3, 3, 1, ht, hb, 0);
            conv_case(2, 1, 3, 2, 4, 3, 1, ht, hb, 1); // one-row band: both halos feed row 0
            conv_case(1, 4, 1, 3, 2, 3, 1, ht, hb, 1); // W = 1
        }
    conv_case(2, 7, 5, 3, 5, 1, 1, 0, 0, 1);
    conv_case(1, 5, 7, 6, 3, 1, 1, 0, 0, 0);
    // stride 2: whole images with odd/even H and W (bot NULL = image bottom), and a band with
    // even H and a top halo (bot never read for even H).
    conv_case(2, 7, 5, 3, 5, 3, 2, 0, 0, 1);
    conv_case(1, 6, 8, 4, 3, 3, 2, 0, 0, 1);
    conv_case(1, 5, 8, 4, 3, 3, 2, 0, 0, 0);
    conv_case(2, 6, 7, 3, 5, 3, 2, 1, 0, 1);
    conv_case(1, 1, 1, 3, 2, 3, 2, 0, 0, 1);
    // Odd H band with both halos (bottom halo is read for odd H).
    conv_case(2, 7, 5, 3, 5, 3, 2, 1, 1, 1);
    // Larger cases that split into several row chunks inside the fast kernel.
    conv_case(1, 40, 70, 16, 8, 3, 1, 1, 1, 1);
    conv_case(1, 100, 16, 512, 4, 3, 1, 1, 0, 1);
    conv_case(1, 70, 129, 4, 3, 3, 2, 1, 0, 1);
    // stride 2 with >= 256 output pixels (the 3-tap stride-2 path): odd / even H and W, halos
    conv_case(2, 33, 36, 8, 20, 3, 2, 1, 1, 1);
    conv_case(1, 34, 31, 6, 40, 3, 2, 0, 1, 0);
    conv_case(1, 32, 32, 5, 7, 3, 2, 0, 0, 1);
    conv_case(1, 33, 70, 8, 16, 1, 1, 0, 0, 1);
}

// Splitting an image into row bands, each with its neighbours' rows as halos, reproduces the
// whole-image convolution exactly (the property displaced patch parallelism relies on).
static void band_split_case(int B, int H, int W, int cin, int cout, int stride, int nb,
                            const int *h0s) {
    const int Ho = out_ext(H, stride), Wo = out_ext(W, stride);
    float *x = rand_buf((size_t)B * H * W * cin);
    float *w = rand_buf((size_t)9 * cin * cout);
    float *bias = rand_buf((size_t)cout);
    const size_t ny = (size_t)B * Ho * Wo * cout;
    float *whole = const_buf(ny, NAN);
    float *banded = const_buf(ny, NAN);
    df_conv2d(whole, x, NULL, NULL, w, bias, B, H, W, cin, cout, 3, stride);
    const size_t row = (size_t)W * cin;
    for (int b = 0; b < nb; b++) {
        const int h0 = h0s[b], h1 = b + 1 < nb ? h0s[b + 1] : H, hb = h1 - h0;
        const int o0 = h0 / stride, ob = out_ext(hb, stride);
        // Contiguous band copies [B][hb][W][Cin] and halos [B][1][W][Cin].
        float *xb = df_malloc((size_t)B * hb * row * sizeof(float));
        float *top = h0 > 0 ? df_malloc((size_t)B * row * sizeof(float)) : NULL;
        float *bot = h1 < H ? df_malloc((size_t)B * row * sizeof(float)) : NULL;
        float *yb = df_malloc((size_t)B * ob * Wo * cout * sizeof(float));
        for (int n = 0; n < B; n++) {
            const float *img = x + (size_t)n * H * row;
            memcpy(xb + (size_t)n * hb * row, img + (size_t)h0 * row, hb * row * sizeof(float));
            if (top) memcpy(top + n * row, img + (size_t)(h0 - 1) * row, row * sizeof(float));
            if (bot) memcpy(bot + n * row, img + (size_t)h1 * row, row * sizeof(float));
        }
        df_conv2d(yb, xb, top, bot, w, bias, B, hb, W, cin, cout, 3, stride);
        for (int n = 0; n < B; n++)
            memcpy(banded + ((size_t)n * Ho + o0) * Wo * cout, yb + (size_t)n * ob * Wo * cout,
                   (size_t)ob * Wo * cout * sizeof(float));
        df_free(xb);
        df_free(top);
        df_free(bot);
        df_free(yb);
    }
    char label[96];
    snprintf(label, sizeof label, "bands s%d H%d W%d x%d", stride, H, W, nb);
    df_allclose(banded, whole, ny, 1e-5f, 1e-5f, label);
    // and the whole-image fast result matches the reference
    float *ref = const_buf(ny, NAN);
    df_conv2d_ref(ref, x, NULL, NULL, w, bias, B, H, W, cin, cout, 3, stride);
    df_allclose(whole, ref, ny, 1e-4f, 1e-4f, "whole vs ref");
    df_free(ref);
    df_free(x);
    df_free(w);
    df_free(bias);
    df_free(whole);
    df_free(banded);
}

static void test_conv_bands(void) {
    const int two[2] = {0, 4}, three[3] = {0, 3, 5};
    band_split_case(2, 7, 5, 3, 5, 1, 2, two);
    band_split_case(2, 7, 5, 3, 5, 1, 3, three);
    const int s2_two[2] = {0, 4}, s2_three[3] = {0, 4, 8};
    band_split_case(2, 8, 5, 3, 4, 2, 2, s2_two);   // even bands, even H
    band_split_case(1, 11, 6, 4, 3, 2, 3, s2_three); // last band odd (image bottom)
}

// ---------------------------------------------------------------------------------------------
// Linear

static void linear_case(int M, int K, int N, int use_bias, int accumulate) {
    float *x = rand_buf((size_t)M * K);
    float *w = rand_buf((size_t)N * K);
    float *bias = use_bias ? rand_buf((size_t)N) : NULL;
    float *y0 = rand_buf((size_t)M * N); // initial y for accumulate
    const size_t ny = (size_t)M * N > 0 ? (size_t)M * N : 1;
    float *y = df_malloc(ny * sizeof(float));
    float *yr = df_malloc(ny * sizeof(float));
    for (size_t i = 0; i < (size_t)M * N; i++) {
        y[i] = accumulate ? y0[i] : NAN;
        yr[i] = accumulate ? y0[i] : NAN;
    }
    df_linear(y, x, w, bias, M, K, N, accumulate);
    df_linear_ref(yr, x, w, bias, M, K, N, accumulate);
    char label[96];
    snprintf(label, sizeof label, "linear %dx%d->%d bias%d acc%d", M, K, N, use_bias, accumulate);
    df_allclose(y, yr, (size_t)M * N, 1e-4f, 1e-4f, label);
    df_free(x);
    df_free(w);
    df_free(bias);
    df_free(y0);
    df_free(y);
    df_free(yr);
}

static void test_linear(void) {
    for (int b = 0; b < 2; b++)
        for (int a = 0; a < 2; a++) {
            linear_case(7, 5, 3, b, a);
            linear_case(1, 13, 9, b, a);
            linear_case(33, 64, 17, b, a);
        }
    // hand case: x [2][2], W [3][2], b [3]
    const float x[4] = {1, 2, 3, 4}, w[6] = {1, 0, 0, 1, 1, -1}, bias[3] = {0.5f, 0, 1};
    float y[6] = {1, 1, 1, 1, 1, 1};
    df_linear(y, x, w, bias, 2, 2, 3, 1);
    const float want[6] = {2.5f, 3, 1, 4.5f, 5, 1};
    df_allclose(y, want, 6, 1e-6f, 0, "linear hand acc");
    df_linear(y, x, w, NULL, 2, 2, 3, 0);
    const float want0[6] = {1, 2, -1, 3, 4, -1};
    df_allclose(y, want0, 6, 1e-6f, 0, "linear hand");
}

int main(int argc, char **argv) {
    df_test_select_cpu(argc, argv);
    df_set_threads(1);
    test_convert();
    test_pack();
    test_convert_pack_vs_ref();
    test_conv_hand();
    test_conv_random();
    test_conv_bands();
    test_linear();
    // The fast kernels again with 2 BLAS threads (results must not depend on threading).
    df_set_threads(2);
    conv_case(1, 40, 70, 16, 8, 3, 1, 1, 1, 1);
    conv_case(1, 70, 129, 4, 3, 3, 2, 1, 0, 1);
    conv_case(2, 33, 36, 8, 20, 3, 2, 1, 1, 1);
    conv_case(1, 64, 40, 16, 96, 3, 2, 1, 0, 1);
    conv_case(1, 32, 32, 4, 300, 3, 2, 1, 1, 1); // more channels than pixels: team split
    linear_case(65, 64, 33, 1, 1);
    return df_test_result();
}
