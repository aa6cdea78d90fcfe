// Tests of the Winograd conv (src/kernels/winograd.c): df_conv2d_winograd F(2x2,3x3) and
// F(4x4,3x3) against the direct reference conv df_conv2d_ref (double accumulation) on random
// inputs: odd H/W, W not a multiple of the tile, one-row bands, halo rows above/below, channel
// counts that are not multiples of the vector width, several tile / channel blocks; row bands
// with their neighbours' rows as halos reproduce the whole image; df_conv2d_algo's choice.
// `test_kernels_winograd [--cpu auto|avx2|avx512|ref]` (tests/kernels.cmake).
//
// Tolerance: the error relative to the output's RMS (max |y - ref| / rms(ref), and the rel-L2
// ||y - ref|| / ||ref||). Inputs and weights uniform in [-1, 1); measured on Zen 4 (avx512, the
// other variants alike), worst case over the cases below (the 700-channel one): F2 max 3.9e-6,
// rel-L2 5.9e-7; F4 max 7.9e-5, rel-L2 3.2e-6 (F4's larger transform coefficients; the max
// grows with the number of outputs). The limits (F2 3e-5 / 4e-6, F4 4e-4 / 2e-5) leave 5-8x
// headroom and still catch any wrong coefficient, tile or halo row (errors of order 1).
// WINO_VERBOSE=1 prints each case's errors.
#include "df_test.h"
#include "df_test_cpu.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
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
static float *nan_buf(size_t n) {
    float *p = df_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static double g_worst[5][2]; // [m][max, rel-L2] over all cases

// Error of y against the reference: max |y - r| / rms(r) and ||y - r|| / ||r||. Any NaN (an
// output not written) gives +inf.
static void errors(const float *y, const float *r, size_t n, double *emax, double *el2) {
    double ss = 0, se = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)y[i] - (double)r[i];
        if (!isfinite(y[i])) {
            *emax = *el2 = INFINITY;
            return;
        }
        ss += (double)r[i] * r[i];
        se += d * d;
        if (fabs(d) > mx) mx = fabs(d);
    }
    const double rms = sqrt(ss / (double)n);
    *emax = rms > 0 ? mx / rms : mx;
    *el2 = ss > 0 ? sqrt(se / ss) : sqrt(se);
}

static void check_err(const char *label, int m, double emax, double el2) {
    const double tmax = m == 2 ? 3e-5 : 4e-4, tl2 = m == 2 ? 4e-6 : 2e-5;
    if (getenv("WINO_VERBOSE")) printf("%s F%d: %.3g %.3g\n", label, m, emax, el2);
    if (emax > g_worst[m][0]) g_worst[m][0] = emax;
    if (el2 > g_worst[m][1]) g_worst[m][1] = el2;
    df_test_checks++;
    if (!(emax <= tmax && el2 <= tl2)) {
        df_test_failures++;
        fprintf(stderr, "FAIL %s F%d: max err %.3g (limit %.3g), rel-L2 %.3g (limit %.3g)\n",
                label, m, emax, tmax, el2, tl2);
    }
}

// vs_fast: against the direct fast conv df_conv2d (itself tested against the reference in
// test_kernels_conv) where the double-precision reference would take too long.
static void wino_case_vs(int B, int H, int W, int cin, int cout, int use_top, int use_bot,
                         int use_bias, int vs_fast) {
    float *x = rand_buf((size_t)B * H * W * cin);
    float *top = use_top ? rand_buf((size_t)B * W * cin) : NULL;
    float *bot = use_bot ? rand_buf((size_t)B * W * cin) : NULL;
    float *w = rand_buf((size_t)9 * cin * cout);
    float *bias = use_bias ? rand_buf((size_t)cout) : NULL;
    const size_t ny = (size_t)B * H * W * cout;
    float *yr = nan_buf(ny), *y = nan_buf(ny);
    if (vs_fast) df_conv2d(yr, x, top, bot, w, bias, B, H, W, cin, cout, 3, 1);
    else df_conv2d_ref(yr, x, top, bot, w, bias, B, H, W, cin, cout, 3, 1);
    char label[160];
    snprintf(label, sizeof label, "wino B%d H%d W%d %d->%d top%d bot%d bias%d", B, H, W, cin,
             cout, use_top, use_bot, use_bias);
    for (int m = 2; m <= 4; m += 2) {
        for (size_t i = 0; i < ny; i++) y[i] = NAN;
        df_conv2d_winograd(y, x, top, bot, w, bias, B, H, W, cin, cout, m);
        double emax, el2;
        errors(y, yr, ny, &emax, &el2);
        check_err(label, m, emax, el2);
    }
    df_free(x);
    df_free(top);
    df_free(bot);
    df_free(w);
    df_free(bias);
    df_free(y);
    df_free(yr);
}

static void wino_case(int B, int H, int W, int cin, int cout, int use_top, int use_bot,
                      int use_bias) {
    wino_case_vs(B, H, W, cin, cout, use_top, use_bot, use_bias, 0);
}

// Row bands [h0s[b], h0s[b+1]) with the neighbouring rows as halos: together the whole image's
// conv (the patch-parallel convention; tiles restart at each band's first row).
static void band_case(int B, int H, int W, int cin, int cout, int nb, const int *h0s, int m) {
    float *x = rand_buf((size_t)B * H * W * cin);
    float *w = rand_buf((size_t)9 * cin * cout);
    float *bias = rand_buf((size_t)cout);
    const size_t ny = (size_t)B * H * W * cout, row = (size_t)W * cin;
    float *ref = nan_buf(ny), *banded = nan_buf(ny);
    df_conv2d_ref(ref, x, NULL, NULL, w, bias, B, H, W, cin, cout, 3, 1);
    for (int b = 0; b < nb; b++) {
        const int h0 = h0s[b], h1 = b + 1 < nb ? h0s[b + 1] : H, hb = h1 - h0;
        float *xb = df_malloc((size_t)B * hb * row * sizeof(float));
        float *top = h0 > 0 ? df_malloc((size_t)B * row * sizeof(float)) : NULL;
        float *bot = h1 < H ? df_malloc((size_t)B * row * sizeof(float)) : NULL;
        float *yb = nan_buf((size_t)B * hb * W * cout);
        for (int n = 0; n < B; n++) {
            const float *img = x + (size_t)n * H * row;
            memcpy(xb + (size_t)n * hb * row, img + (size_t)h0 * row, hb * row * sizeof(float));
            if (top) memcpy(top + n * row, img + (size_t)(h0 - 1) * row, row * sizeof(float));
            if (bot) memcpy(bot + n * row, img + (size_t)h1 * row, row * sizeof(float));
        }
        df_conv2d_winograd(yb, xb, top, bot, w, bias, B, hb, W, cin, cout, m);
        for (int n = 0; n < B; n++)
            memcpy(banded + ((size_t)n * H + h0) * W * cout, yb + (size_t)n * hb * W * cout,
                   (size_t)hb * W * cout * sizeof(float));
        df_free(xb);
        df_free(top);
        df_free(bot);
        df_free(yb);
    }
    char label[96];
    snprintf(label, sizeof label, "wino bands H%d W%d x%d", H, W, nb);
    double emax, el2;
    errors(banded, ref, ny, &emax, &el2);
    check_err(label, m, emax, el2);
    df_free(x);
    df_free(w);
    df_free(bias);
    df_free(ref);
    df_free(banded);
}

static void test_random(void) {
    for (int ht = 0; ht < 2; ht++)
        for (int hb = 0; hb < 2; hb++) {
            wino_case(2, 7, 5, 3, 5, ht, hb, 1);
            wino_case(1, 5, 7, 17, 9, ht, hb, 0);
            wino_case(2, 1, 3, 2, 4, ht, hb, 1); // one-row band: both halos feed row 0
            wino_case(1, 4, 1, 3, 2, ht, hb, 1); // W = 1
            wino_case(1, 2, 9, 8, 8, ht, hb, 1); // a band shorter than an F4 tile
        }
    wino_case(1, 13, 11, 67, 33, 1, 1, 1);   // channels beyond one 64-wide vector
    wino_case(2, 9, 10, 16, 130, 0, 1, 1);   // several output-channel vectors, W % 4 = 2
    wino_case(1, 12, 12, 256, 256, 1, 0, 1); // an SD-like channel count (error growth with Cin)
    wino_case(1, 64, 45, 8, 24, 1, 1, 1);    // many tiles, few channels
}

// Several tile blocks and output-channel blocks (scratch budgets 24 / 64 MiB): F4 with 700 in
// and out: 36*700*4 B of U per output channel -> 656 channels per block (2 blocks), 36*1400*4 B
// per tile -> 124 tiles per block (144 tiles: 2 blocks); F2: 576 tiles in 3 blocks. Against the
// direct fast conv (the reference would take a minute).
static void test_blocks(void) {
    wino_case_vs(1, 48, 47, 700, 700, 1, 1, 1, 1);
}

static void test_bands(void) {
    const int two[2] = {0, 4}, three[3] = {0, 3, 5}, odd[3] = {0, 5, 6};
    for (int m = 2; m <= 4; m += 2) {
        band_case(2, 7, 5, 3, 5, 2, two, m);
        band_case(2, 7, 5, 3, 5, 3, three, m);
        band_case(1, 11, 9, 20, 12, 3, odd, m); // a one-row band in the middle
    }
}

// df_winograd_pick / df_conv2d_algo: direct is df_conv2d bit for bit; winograd on stride-1 3x3
// only; F2 / F4 forced.
static void test_algo(void) {
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_DIRECT, 2, 64, 64, 320, 320, 3, 1), 0);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_WINOGRAD, 2, 64, 64, 320, 320, 3, 2), 0);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_WINOGRAD, 2, 64, 64, 320, 320, 1, 1), 0);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_AUTO, 2, 64, 64, 320, 320, 1, 1), 0);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_WINOGRAD, 2, 64, 64, 4, 320, 3, 1), 0);
    EXPECT_TRUE(df_winograd_pick(DF_CONV_ALGO_WINOGRAD, 2, 64, 64, 320, 320, 3, 1) != 0);
    // tile size by tiles per call: F4 from 128 tiles of 4x4, auto direct below 128 of 2x2
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_AUTO, 2, 64, 64, 320, 320, 3, 1), 4);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_AUTO, 2, 32, 32, 640, 640, 3, 1), 4);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_AUTO, 2, 16, 16, 1280, 1280, 3, 1), 2);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_AUTO, 2, 8, 8, 1280, 1280, 3, 1), 0);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_WINOGRAD, 2, 8, 8, 1280, 1280, 3, 1), 2);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_AUTO, 2, 64, 64, 4, 320, 3, 1), 0);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_WINO_F2, 1, 3, 3, 1, 1, 3, 1), 2);
    EXPECT_EQ_I64(df_winograd_pick(DF_CONV_ALGO_WINO_F4, 1, 3, 3, 1, 1, 3, 1), 4);
    int a = -1;
    EXPECT_TRUE(df_conv_algo_parse("winograd", &a) && a == DF_CONV_ALGO_WINOGRAD);
    EXPECT_TRUE(df_conv_algo_parse("auto", &a) && a == DF_CONV_ALGO_AUTO);
    EXPECT_TRUE(df_conv_algo_parse("direct", &a) && a == DF_CONV_ALGO_DIRECT);
    EXPECT_TRUE(!df_conv_algo_parse("wino", &a) && a == DF_CONV_ALGO_DIRECT);

    const int B = 1, H = 9, W = 7, ci = 24, co = 16;
    float *x = rand_buf((size_t)B * H * W * ci), *w = rand_buf((size_t)9 * ci * co);
    float *bias = rand_buf(co), *top = rand_buf((size_t)W * ci);
    const size_t ny = (size_t)B * H * W * co;
    float *y0 = nan_buf(ny), *y1 = nan_buf(ny), *y2 = nan_buf(ny), *y3 = nan_buf(ny);
    df_conv2d(y0, x, top, NULL, w, bias, B, H, W, ci, co, 3, 1);
    df_conv2d_algo(DF_CONV_ALGO_DIRECT, y1, x, top, NULL, w, bias, B, H, W, ci, co, 3, 1);
    EXPECT_TRUE(memcmp(y0, y1, ny * sizeof(float)) == 0);
    df_conv2d_winograd(y2, x, top, NULL, w, bias, B, H, W, ci, co, 4);
    df_conv2d_algo(DF_CONV_ALGO_WINO_F4, y3, x, top, NULL, w, bias, B, H, W, ci, co, 3, 1);
    EXPECT_TRUE(memcmp(y2, y3, ny * sizeof(float)) == 0);
    df_free(x);
    df_free(w);
    df_free(bias);
    df_free(top);
    df_free(y0);
    df_free(y1);
    df_free(y2);
    df_free(y3);
}

// Threads must not change the result (same partition of the sums).
static void test_threads(void) {
    const int B = 2, H = 17, W = 19, ci = 40, co = 72;
    float *x = rand_buf((size_t)B * H * W * ci), *w = rand_buf((size_t)9 * ci * co);
    float *bias = rand_buf(co);
    const size_t ny = (size_t)B * H * W * co;
    float *y1 = nan_buf(ny), *y2 = nan_buf(ny);
    for (int m = 2; m <= 4; m += 2) {
        df_set_threads(1);
        df_conv2d_winograd(y1, x, NULL, NULL, w, bias, B, H, W, ci, co, m);
        df_set_threads(2);
        df_conv2d_winograd(y2, x, NULL, NULL, w, bias, B, H, W, ci, co, m);
        EXPECT_TRUE(memcmp(y1, y2, ny * sizeof(float)) == 0);
    }
    df_set_threads(1);
    df_free(x);
    df_free(w);
    df_free(bias);
    df_free(y1);
    df_free(y2);
}

int main(int argc, char **argv) {
    df_test_select_cpu(argc, argv);
    df_set_threads(1);
    test_algo();
    test_random();
    test_bands();
    test_blocks();
    test_threads();
    df_set_threads(2);
    wino_case(2, 13, 11, 67, 33, 1, 1, 1);
    printf("worst error vs the direct reference (max / rms, rel-L2): F2 %.3g / %.3g, F4 %.3g / "
           "%.3g\n",
           g_worst[2][0], g_worst[2][1], g_worst[4][0], g_worst[4][1]);
    return df_test_result();
}
