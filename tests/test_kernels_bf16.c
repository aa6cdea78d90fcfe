// Tests of the bf16 GEMM path (src/kernels/gemm_bf16.h): rounding, packing layout, the fast
// AVX512_BF16 kernel against its plain-C emulation df_gemm_bf16_ref, both against double
// products of the bf16-rounded inputs (only the f32 accumulation may differ) and against the f32
// kernels with a bf16-sized tolerance; df_linear_bf16 / df_conv2d_bf16 likewise.
// `--cpu avx512` / auto needs AVX512_BF16 (else exit 77); `--cpu ref|avx2` runs the emulation.
#include "df_test.h"
#include "df_test_cpu.h"
#include "kernels/gemm_bf16.h"
#include "kernels/kernels.h"

static uint64_t g_rng = 0x243F6A8885A308D3ull;
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
static float rb(float v) { return df_bf16_to_f32(df_bf16_round(v)); }
static float *rounded(const float *x, size_t n) {
    float *p = df_malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rb(x[i]);
    return p;
}
static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_round(void) {
    EXPECT_TRUE(df_bf16_round(1.0f) == 0x3F80);
    EXPECT_TRUE(df_bf16_round(-2.0f) == 0xC000);
    EXPECT_TRUE(df_bf16_round(1.0f + 0x1p-8f) == 0x3F80);          // tie -> even (down)
    EXPECT_TRUE(df_bf16_round(1.0f + 3 * 0x1p-8f) == 0x3F82);      // tie -> even (up)
    EXPECT_TRUE(df_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 0x3F81); // above the tie
    EXPECT_TRUE(df_bf16_round(1e-40f) == 0x0000);                  // denormal flushes
    EXPECT_TRUE(df_bf16_round(-1e-40f) == 0x8000);
    EXPECT_TRUE(df_bf16_round(INFINITY) == 0x7F80);
    EXPECT_TRUE(isnan(df_bf16_to_f32(df_bf16_round(NAN))));
    EXPECT_TRUE(df_bf16_round(3.4e38f) == 0x7F80); // rounds up to infinity
    // normal values agree with core.h's rounding, and the error is <= half an ulp (<= 2^-8 relative)
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        const float v = frand() * 100.0f;
        if (df_bf16_round(v) != df_f32_to_bf16(v)) bad++;
        if (fabsf(rb(v) - v) > fabsf(v) * 0x1p-8f) bad++;
    }
    EXPECT_EQ_I64(bad, 0);
}

// Packed layout: element (k, n) at panel n/16, pair k/2, lane n%16, half k%2; zero padding.
static void check_pack(int K, int N, int trans) {
    const int ldb = trans ? K + 3 : N + 5;
    float *B = rand_buf((size_t)(trans ? N : K) * ldb);
    uint16_t *p = df_malloc(df_bf16_mat_elems(K, N) * sizeof(uint16_t));
    df_bf16_mat m;
    df_bf16_pack(p, B, ldb, trans, K, N, &m);
    EXPECT_TRUE(m.p == p && m.K == K && m.N == N && m.kp == K + (K & 1));
    const int np = (N + 15) / 16;
    int bad = 0;
    for (int j = 0; j < np; j++)
        for (int k = 0; k < m.kp; k++)
            for (int c = 0; c < 16; c++) {
                const int n = 16 * j + c;
                const float v = n < N && k < K ? (trans ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n]) : 0.0f;
                const uint16_t got = p[((size_t)j * (m.kp / 2) + k / 2) * 32 + 2 * c + (k & 1)];
                if (got != df_bf16_round(v)) bad++;
            }
    if (bad) fprintf(stderr, "pack K=%d N=%d trans=%d: %d wrong\n", K, N, trans, bad);
    EXPECT_EQ_I64(bad, 0);
    df_free(B);
    df_free(p);
}

// df_bf16_pack_weight from a stored F32/F16/BF16 weight == convert to f32 (+ HWIO), then pack.
static void check_pack_weight(int conv, int out, int in) {
    const size_t n = (size_t)out * in * (conv ? 9 : 1);
    const int K = conv ? 9 * in : in;
    const df_dtype dts[3] = {DF_DTYPE_F32, DF_DTYPE_F16, DF_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        const size_t es = df_dtype_size(dts[d]);
        unsigned char *raw = df_malloc(n * es);
        for (size_t i = 0; i < n; i++) {
            const float f = frand() * 3.0f;
            if (dts[d] == DF_DTYPE_F32) memcpy(raw + 4 * i, &f, 4);
            else {
                const uint16_t h = dts[d] == DF_DTYPE_F16 ? df_f32_to_f16(f) : df_f32_to_bf16(f);
                memcpy(raw + 2 * i, &h, 2);
            }
        }
        float *f32 = df_malloc(n * sizeof(float));
        if (conv) df_conv_weight_pack_ref(f32, raw, dts[d], out, in, 3);
        else df_convert_to_f32_ref(f32, raw, dts[d], n);
        const size_t ne = df_bf16_mat_elems(K, out);
        uint16_t *a = df_malloc(ne * 2), *b = df_malloc(ne * 2);
        df_bf16_mat ma, mb;
        df_bf16_pack(a, f32, conv ? out : K, !conv, K, out, &ma);
        df_bf16_pack_weight(b, raw, dts[d], conv, out, in, &mb);
        EXPECT_TRUE(mb.K == ma.K && mb.N == ma.N && mb.kp == ma.kp);
        if (memcmp(a, b, ne * 2) != 0)
            fprintf(stderr, "pack_weight conv=%d %dx%d dtype %d differs\n", conv, out, in, d);
        EXPECT_TRUE(memcmp(a, b, ne * 2) == 0);
        df_free(raw), df_free(f32), df_free(a), df_free(b);
    }
}

// C = beta C + A[M][K] * B[k0 + k][n0 + n]: fast (when available) vs emulation vs double.
static void gemm_case(int M, int N, int K, int k0, int n0, float beta) {
    const int KB = k0 + K + 1, NB = n0 + N + 3, lda = K + 2, ldc = N + 1;
    float *A = rand_buf((size_t)M * lda), *Bf = rand_buf((size_t)KB * NB);
    float *C0 = rand_buf((size_t)M * ldc);
    uint16_t *p = df_malloc(df_bf16_mat_elems(KB, NB) * sizeof(uint16_t));
    df_bf16_mat m;
    df_bf16_pack(p, Bf, NB, 0, KB, NB, &m);
    float *Cr = df_malloc((size_t)M * ldc * sizeof(float)), *Cf = df_malloc((size_t)M * ldc * sizeof(float));
    float *Ct = df_malloc((size_t)M * ldc * sizeof(float));
    float *want = df_malloc((size_t)M * ldc * sizeof(float)), *want32 = df_malloc((size_t)M * ldc * sizeof(float));
    memcpy(Cr, C0, (size_t)M * ldc * sizeof(float));
    memcpy(Cf, C0, (size_t)M * ldc * sizeof(float));
    memcpy(Ct, C0, (size_t)M * ldc * sizeof(float));
    df_gemm_bf16_ref(M, N, K, A, lda, &m, k0, n0, beta, Cr, ldc);
    df_gemm_bf16_serial(M, N, K, A, lda, &m, k0, n0, beta, Cf, ldc);
    df_gemm_bf16(M, N, K, A, lda, &m, k0, n0, beta, Ct, ldc);
    double maxabs = 0; // sum |a b| scale for the tolerance
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = beta != 0.0f ? C0[(size_t)i * ldc + j] : 0.0, s32 = s, sa = fabs(s);
            for (int k = 0; k < K; k++) {
                const double a = A[(size_t)i * lda + k], b = Bf[(size_t)(k0 + k) * NB + n0 + j];
                s += (double)rb((float)a) * rb((float)b);
                s32 += a * b;
                sa += fabs(a * b);
            }
            want[(size_t)i * ldc + j] = (float)s;
            want32[(size_t)i * ldc + j] = (float)s32;
            if (sa > maxabs) maxabs = sa;
        }
    char lab[96];
    snprintf(lab, sizeof lab, "gemm_bf16 ref %dx%dx%d k0=%d n0=%d b=%g", M, N, K, k0, n0, beta);
    // emulation vs exact products of the rounded inputs: f32 accumulation error only
    for (int i = 0; i < M; i++)
        df_allclose(Cr + (size_t)i * ldc, want + (size_t)i * ldc, (size_t)N, (float)(maxabs * 2e-6 + 1e-6), 0, lab);
    snprintf(lab, sizeof lab, "gemm_bf16 fast %dx%dx%d k0=%d n0=%d b=%g", M, N, K, k0, n0, beta);
    for (int i = 0; i < M; i++) // fast vs emulation: same order of additions (up to the pairs)
        df_allclose(Cf + (size_t)i * ldc, Cr + (size_t)i * ldc, (size_t)N, (float)(maxabs * 1e-6 + 1e-7), 1e-6f, lab);
    // bf16 vs f32: relative L2 within the bf16 input rounding
    double num = 0, den = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            const double d = (double)Cf[(size_t)i * ldc + j] - want32[(size_t)i * ldc + j];
            num += d * d;
            den += (double)want32[(size_t)i * ldc + j] * want32[(size_t)i * ldc + j];
        }
    EXPECT_LE_F64(sqrt(num / (den > 0 ? den : 1)), 1e-2);
    // threaded = serial, bit for bit (the split does not change any element's order), and the
    // columns left of n0 / right of N untouched (ldc > N)
    int diff = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            const size_t e = (size_t)i * ldc + j;
            if (bits(Ct[e]) != bits(Cf[e])) diff++;
            if (j >= N && bits(Cf[e]) != bits(C0[e])) diff++;
        }
    EXPECT_EQ_I64(diff, 0);
    df_free(A), df_free(Bf), df_free(C0), df_free(p), df_free(Cr), df_free(Cf), df_free(Ct);
    df_free(want), df_free(want32);
}

static void linear_case(int M, int K, int N, int with_bias, int accumulate) {
    float *x = rand_buf((size_t)M * K), *w = rand_buf((size_t)N * K), *b = rand_buf((size_t)N);
    float *y = rand_buf((size_t)M * N), *yr = df_malloc((size_t)M * N * sizeof(float));
    memcpy(yr, y, (size_t)M * N * sizeof(float));
    uint16_t *p = df_malloc(df_bf16_mat_elems(K, N) * sizeof(uint16_t));
    df_bf16_mat m;
    df_bf16_pack(p, w, K, 1, K, N, &m);
    df_linear_bf16(y, x, &m, with_bias ? b : NULL, M, K, N, accumulate);
    float *xr = rounded(x, (size_t)M * K), *wr = rounded(w, (size_t)N * K);
    df_linear_ref(yr, xr, wr, with_bias ? b : NULL, M, K, N, accumulate);
    char lab[80];
    snprintf(lab, sizeof lab, "linear_bf16 %dx%d->%d bias=%d acc=%d", M, K, N, with_bias, accumulate);
    df_allclose(y, yr, (size_t)M * N, (float)(K * 2e-6 + 1e-5), 1e-5f, lab);
    df_free(x), df_free(w), df_free(b), df_free(y), df_free(yr), df_free(p), df_free(xr), df_free(wr);
}

// df_conv2d_bf16 vs df_conv2d_ref on the bf16-rounded inputs (halo rows too).
static void conv_case(int B, int H, int W, int cin, int cout, int stride, int halos) {
    const size_t xin = (size_t)B * H * W * cin, hal = (size_t)B * W * cin;
    const int Ho = stride == 1 ? H : (H + 1) / 2, Wo = stride == 1 ? W : (W + 1) / 2;
    const size_t nout = (size_t)B * Ho * Wo * cout, nw = (size_t)9 * cin * cout;
    float *x = rand_buf(xin), *top = rand_buf(hal), *bot = rand_buf(hal);
    float *w = rand_buf(nw), *bias = rand_buf((size_t)cout); // HWIO
    float *y = df_malloc(nout * sizeof(float)), *yr = df_malloc(nout * sizeof(float));
    uint16_t *p = df_malloc(df_bf16_mat_elems(9 * cin, cout) * sizeof(uint16_t));
    df_bf16_mat m;
    df_bf16_pack(p, w, cout, 0, 9 * cin, cout, &m);
    df_conv2d_bf16(y, x, halos ? top : NULL, halos ? bot : NULL, &m, bias, B, H, W, cin, cout,
                   stride);
    float *xr = rounded(x, xin), *tr = rounded(top, hal), *br = rounded(bot, hal), *wr = rounded(w, nw);
    df_conv2d_ref(yr, xr, halos ? tr : NULL, halos ? br : NULL, wr, bias, B, H, W, cin, cout, 3,
                  stride);
    char lab[96];
    snprintf(lab, sizeof lab, "conv2d_bf16 %dx%dx%dx%d->%d s%d halos=%d", B, H, W, cin, cout, stride, halos);
    df_allclose(y, yr, nout, (float)(9 * cin * 2e-6 + 1e-5), 1e-5f, lab);
    // and near the f32 conv (bf16-sized relative L2)
    df_conv2d_ref(yr, x, halos ? top : NULL, halos ? bot : NULL, w, bias, B, H, W, cin, cout, 3,
                  stride);
    EXPECT_LE_F64(df_rel_l2(y, yr, nout), 1e-2);
    df_free(x), df_free(top), df_free(bot), df_free(w), df_free(bias), df_free(y), df_free(yr);
    df_free(p), df_free(xr), df_free(tr), df_free(br), df_free(wr);
}

int main(int argc, char **argv) {
    df_test_select_cpu(argc, argv);
    const df_cpu_variant v = df_cpu_variant_get();
    if (v == DF_CPU_AVX512 && !df_cpu_has_bf16()) {
        printf("%s: SKIP: this CPU lacks AVX512_BF16 (%s); the emulation runs with --cpu ref\n",
               argv[0], df_cpu_describe());
        return 77;
    }
    printf("%s: bf16 GEMM: %s\n", argv[0],
           df_bf16_available() ? "AVX512_BF16 kernel" : "plain-C emulation");
    df_set_threads(1);
    test_round();
    check_pack(1, 1, 0);
    check_pack(7, 33, 0);
    check_pack(64, 16, 1);
    check_pack(77, 50, 1);
    check_pack(1001, 19, 1);
    check_pack(40, 130, 0);
    check_pack_weight(0, 33, 77);
    check_pack_weight(0, 64, 640);
    check_pack_weight(1, 40, 16);
    check_pack_weight(1, 21, 5);
    gemm_case(1, 1, 1, 0, 0, 0.0f);
    gemm_case(7, 5, 3, 0, 0, 1.0f);
    gemm_case(13, 33, 66, 2, 16, 0.0f);
    gemm_case(100, 70, 129, 4, 0, 1.0f);
    gemm_case(37, 130, 520, 0, 32, 0.0f); // several k blocks, odd N tail
    gemm_case(200, 64, 400, 6, 0, 1.0f);  // several m blocks
    gemm_case(20, 40, 2101, 2, 16, 1.0f); // several k blocks of the default blocking, odd K
    // small blocks: many k / m blocks and their edges (odd tails inside a block boundary)
    df_bf16_set_blocking(5, 12);
    gemm_case(37, 130, 53, 0, 32, 0.0f);
    gemm_case(50, 17, 21, 4, 0, 1.0f);
    conv_case(1, 20, 16, 16, 40, 1, 1);
    df_bf16_set_blocking(0, 0);
    linear_case(65, 64, 33, 1, 0);
    linear_case(300, 127, 80, 1, 1);
    linear_case(5, 40, 7, 0, 0);
    linear_case(9, 16, 64, 0, 1);
    conv_case(1, 20, 16, 16, 40, 1, 0); // 3-tap path (>= 256 pixels)
    conv_case(2, 17, 16, 8, 24, 1, 1);  // 3-tap with halo rows
    conv_case(2, 7, 9, 6, 20, 1, 1);    // small image: 9-tap path
    conv_case(1, 17, 20, 8, 33, 2, 0);  // stride 2
    conv_case(2, 9, 8, 4, 16, 2, 1);    // stride 2 with halos
    conv_case(1, 40, 36, 8, 24, 2, 1);  // stride 2, >= 256 output pixels (3-tap stride-2 path)
    // threaded (the GEMM split and the conv chunking with 2 threads)
    df_set_threads(2);
    gemm_case(300, 200, 256, 0, 0, 0.0f);
    linear_case(400, 96, 160, 1, 1);
    conv_case(1, 32, 24, 16, 48, 1, 1);
    conv_case(2, 12, 12, 8, 32, 2, 0);
    conv_case(2, 36, 34, 8, 48, 2, 1);
    return df_test_result();
}
