// bf16 GEMM with f32 accumulation (gemm_bf16.h).
//
// Fast kernel (AVX512_BF16, per-function target attributes; compiled once, chosen at run time by
// df_bf16_available()): per thread, blocks of MC rows x KC_PAIRS k pairs of A are rounded to
// bf16 into a per-thread scratch [MC][2 * KC_PAIRS]; for each group of up to 64 columns (4
// panels of packed B) the micro-kernel runs MR = 6 rows at a time: 24 zmm accumulators, 4 B
// vectors per k pair, the A pair broadcast from memory (vdpbf16ps with {1to16}). C is the
// accumulator's start (beta = 1 or a previous k block) and is rewritten after every k block, so
// the f32 additions run in plain k order: per pair, odd product then even product, like the
// emulation df_gemm_bf16_ref.
#include "kernels/gemm_bf16.h"

#include "core/cpu.h"
#include "kernels/kernels.h"

#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#    include <immintrin.h>
#    define DF_BF16_X86 1
#else
#    define DF_BF16_X86 0
#endif

#define MR 6
// Blocking (1 thread, Zen 4, CPU time: 160-185 GFLOP/s at 128 pairs x 48-192 rows, 190-200 at
// 320-640 pairs x 24-72 rows; a 3x3 conv with Cin = 320 then takes its K = 960 in one block).
#ifndef DF_BF16_KC_PAIRS
#    define DF_BF16_KC_PAIRS 480
#endif
#ifndef DF_BF16_MC
#    define DF_BF16_MC 48
#endif

uint16_t df_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); // quiet NaN
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);        // denormal, 0
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

int df_bf16_available(void) {
#if DF_BF16_X86
    return df_cpu_has_bf16() && df_cpu_bf16_allowed() && df_cpu_variant_get() == DF_CPU_AVX512;
#else
    return 0;
#endif
}

const char *df_bf16_unavailable_reason(void) {
    if (df_bf16_available()) return NULL;
    if (!df_cpu_has_bf16()) return "this CPU has no AVX512_BF16";
    if (!df_cpu_bf16_allowed()) return "not every MPI rank has AVX512_BF16";
    return df_cpu_variant_get() == DF_CPU_AVX2 ? "it needs the avx512 kernels (--cpu avx2 runs)"
                                               : "it needs the avx512 kernels (--cpu ref runs)";
}

size_t df_bf16_mat_elems(int K, int N) {
    const size_t kp = (size_t)K + (K & 1), np = ((size_t)N + 15) / 16;
    return np * kp * 16;
}

// ---------------------------------------------------------------------------------------------
// Packing

// Panel j (columns [16j, 16j + 16)) in plain C.
static void pack_panel_c(uint16_t *dst, const float *B, int ldb, int trans, int K, int N, int j) {
    const int kp2 = (K + 1) / 2;
    for (int p = 0; p < kp2; p++)
        for (int c = 0; c < 16; c++) {
            const int n = 16 * j + c;
            for (int h = 0; h < 2; h++) {
                const int k = 2 * p + h;
                float v = 0.0f;
                if (n < N && k < K) v = trans ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n];
                dst[((size_t)p * 16 + c) * 2 + h] = df_bf16_round(v);
            }
        }
}

#if DF_BF16_X86
#    define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

// The 32 bf16 of (lo, hi) interleaved: lane 2c = bf16(lo[c]), lane 2c+1 = bf16(hi[c]).
BF16_TARGET static inline __m512i bf16_interleave(__m512 lo, __m512 hi) {
    const __m512i cv = (__m512i)_mm512_cvtne2ps_pbh(hi, lo); // [bf16(lo) x16 | bf16(hi) x16]
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    return _mm512_permutexvar_epi16(idx, cv);
}

BF16_TARGET static void pack_panel_avx(uint16_t *dst, const float *B, int ldb, int trans, int K,
                                       int N, int j) {
    const int kp2 = (K + 1) / 2, n0 = 16 * j, nc = N - n0 < 16 ? N - n0 : 16;
    const __mmask16 m = (__mmask16)((1u << nc) - 1u);
    if (!trans) {
        for (int p = 0; p < kp2; p++) {
            const __m512 lo = _mm512_maskz_loadu_ps(m, B + (size_t)(2 * p) * ldb + n0);
            const __m512 hi = 2 * p + 1 < K
                                  ? _mm512_maskz_loadu_ps(m, B + (size_t)(2 * p + 1) * ldb + n0)
                                  : _mm512_setzero_ps();
            _mm512_store_si512((void *)(dst + (size_t)p * 32), bf16_interleave(lo, hi));
        }
        return;
    }
    // trans: rows n of W [N][K]; the pair (2p, 2p+1) of row n is one dword of its bf16 row.
    // 16 rows at a time: convert 16 k pairs of each row, then transpose the 16 x 16 dwords
    // through a small buffer.
    uint32_t tb[16][16] __attribute__((aligned(64)));
    for (int p0 = 0; p0 < kp2; p0 += 16) {
        const int np = kp2 - p0 < 16 ? kp2 - p0 : 16;
        const int k0 = 2 * p0, kc = K - k0 < 32 ? K - k0 : 32;
        const __mmask16 ml = (__mmask16)(kc >= 16 ? 0xffffu : (1u << kc) - 1u);
        const __mmask16 mh = (__mmask16)(kc >= 32 ? 0xffffu : kc > 16 ? (1u << (kc - 16)) - 1u : 0u);
        for (int c = 0; c < 16; c++) {
            if (c >= nc) {
                _mm512_store_si512((void *)tb[c], _mm512_setzero_si512());
                continue;
            }
            const float *r = B + (size_t)(n0 + c) * ldb + k0;
            const __m512 a = _mm512_maskz_loadu_ps(ml, r), b = _mm512_maskz_loadu_ps(mh, r + 16);
            _mm512_store_si512((void *)tb[c], (__m512i)_mm512_cvtne2ps_pbh(b, a));
        }
        const __m512i vidx = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176,
                                               192, 208, 224, 240);
        for (int p = 0; p < np; p++) {
            const __m512i v = _mm512_i32gather_epi32(vidx, (const void *)&tb[0][p], 4);
            _mm512_store_si512((void *)(dst + (size_t)(p0 + p) * 32), v);
        }
    }
}
#endif

void df_bf16_pack(uint16_t *dst, const float *B, int ldb, int trans, int K, int N,
                  df_bf16_mat *out) {
    DF_ASSERT(K > 0 && N > 0);
    const int np = (N + 15) / 16, kp = K + (K & 1);
    const size_t pstride = (size_t)kp * 16;
#if DF_BF16_X86
    const int fast = df_cpu_has_bf16();
#endif
#pragma omp parallel for schedule(static) if ((size_t)K * N > 65536 && df_par_threads() > 1)
    for (int j = 0; j < np; j++) {
#if DF_BF16_X86
        if (fast) {
            pack_panel_avx(dst + (size_t)j * pstride, B, ldb, trans, K, N, j);
            continue;
        }
#endif
        pack_panel_c(dst + (size_t)j * pstride, B, ldb, trans, K, N, j);
    }
    out->p = dst;
    out->K = K;
    out->N = N;
    out->kp = kp;
}

static _Thread_local float *g_wtmp = NULL; // df_bf16_pack_weight's panel buffer
static _Thread_local size_t g_wtmp_floats = 0;

void df_bf16_pack_weight(uint16_t *dst, const void *src, df_dtype dtype, int conv, int out,
                         int in, df_bf16_mat *out_mat) {
    const int K = conv ? 9 * in : in, N = out, np = (N + 15) / 16, kp = K + (K & 1);
    DF_ASSERT(K > 0 && N > 0);
    const size_t pstride = (size_t)kp * 16, es = df_dtype_size(dtype);
#if DF_BF16_X86
    const int fast = df_cpu_has_bf16();
#endif
#pragma omp parallel for schedule(static) if ((size_t)K * N > 65536 && df_par_threads() > 1)
    for (int j = 0; j < np; j++) {
        const int n0 = 16 * j, nc = N - n0 < 16 ? N - n0 : 16;
        if (g_wtmp_floats < (size_t)K * 16) {
            df_free(g_wtmp);
            g_wtmp_floats = (size_t)K * 16;
            g_wtmp = (float *)df_malloc(g_wtmp_floats * sizeof(float));
            DF_ASSERT(g_wtmp != NULL);
        }
        // rows [n0, n0 + nc) of the weight are one contiguous tensor of nc rows
        const unsigned char *s = (const unsigned char *)src + (size_t)n0 * K * es;
        if (conv) df_conv_weight_pack_range(g_wtmp, s, dtype, nc, in, 3, 0, nc); // [K][nc]
        else df_convert_to_f32(g_wtmp, s, dtype, (size_t)nc * K);               // [nc][K]
        // the panel-local copy is columns [0, nc) of a matrix whose panel 0 is this panel
        uint16_t *d = dst + (size_t)j * pstride;
#if DF_BF16_X86
        if (fast) {
            pack_panel_avx(d, g_wtmp, conv ? nc : K, !conv, K, nc, 0);
            continue;
        }
#endif
        pack_panel_c(d, g_wtmp, conv ? nc : K, !conv, K, nc, 0);
    }
    out_mat->p = dst;
    out_mat->K = K;
    out_mat->N = N;
    out_mat->kp = kp;
}

// ---------------------------------------------------------------------------------------------
// Emulation

void df_gemm_bf16_ref(int M, int N, int K, const float *A, int lda, const df_bf16_mat *B, int k0,
                      int n0, float beta, float *C, int ldc) {
    DF_ASSERT((k0 & 1) == 0 && (n0 & 15) == 0 && k0 + K <= B->K && n0 + N <= B->N);
    const size_t pstride = (size_t)B->kp * 16;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int nn = n0 + n;
            const uint16_t *bp = B->p + (size_t)(nn / 16) * pstride + (size_t)(nn % 16) * 2;
            float acc = beta != 0.0f ? C[(size_t)m * ldc + n] : 0.0f;
            for (int k = 0; k < K; k += 2) {
                const size_t pi = (size_t)((k0 + k) / 2) * 32;
                const float a0 = df_bf16_to_f32(df_bf16_round(A[(size_t)m * lda + k]));
                const float a1 =
                    k + 1 < K ? df_bf16_to_f32(df_bf16_round(A[(size_t)m * lda + k + 1])) : 0.0f;
                acc += a1 * df_bf16_to_f32(bp[pi + 1]);
                acc += a0 * df_bf16_to_f32(bp[pi]);
            }
            C[(size_t)m * ldc + n] = acc;
        }
}

// ---------------------------------------------------------------------------------------------
// Fast kernel

#if DF_BF16_X86
static _Thread_local uint16_t *g_abuf = NULL;
static _Thread_local size_t g_abuf_elems = 0;
static int g_kc_pairs = DF_BF16_KC_PAIRS, g_mc = DF_BF16_MC; // df_bf16_set_blocking

// Rows [0, mr) of the bf16 A block (row stride ap2 dwords), pairs [0, np2), columns: nv vectors
// (nv * 16 columns, the last masked by mlast) of panels at b (panel stride ps uint16).
#    define UK_BODY(MRC, NVC)                                                                  \
        do {                                                                                   \
            __m512 acc[MRC][NVC];                                                              \
            for (int r = 0; r < MRC; r++)                                                      \
                for (int v = 0; v < NVC; v++) {                                                \
                    const __mmask16 mm = v == NVC - 1 ? mlast : (__mmask16)0xffff;             \
                    acc[r][v] = first ? _mm512_setzero_ps()                                    \
                                      : _mm512_maskz_loadu_ps(mm, C + (size_t)r * ldc + 16 * v); \
                }                                                                              \
            const uint16_t *bq = b;                                                            \
            for (int p = 0; p < np2; p++, bq += 32) {                                          \
                __m512bh bv[NVC];                                                              \
                for (int v = 0; v < NVC; v++)                                                  \
                    bv[v] = (__m512bh)_mm512_load_si512((const void *)(bq + (size_t)v * ps));  \
                for (int r = 0; r < MRC; r++) {                                                \
                    const __m512bh av =                                                        \
                        (__m512bh)_mm512_set1_epi32((int)a[(size_t)r * ap2 + p]);              \
                    for (int v = 0; v < NVC; v++)                                              \
                        acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);                    \
                }                                                                              \
            }                                                                                  \
            for (int r = 0; r < MRC; r++)                                                      \
                for (int v = 0; v < NVC; v++) {                                                \
                    const __mmask16 mm = v == NVC - 1 ? mlast : (__mmask16)0xffff;             \
                    _mm512_mask_storeu_ps(C + (size_t)r * ldc + 16 * v, mm, acc[r][v]);        \
                }                                                                              \
        } while (0)

#    define UK_FN(MRC, NVC)                                                                    \
        BF16_TARGET static void uk_##MRC##_##NVC(const uint32_t *a, size_t ap2, const uint16_t *b, \
                                                 size_t ps, int np2, float *C, int ldc,        \
                                                 int first, __mmask16 mlast) {                 \
            _Pragma("GCC unroll 8") UK_BODY(MRC, NVC);                                        \
        }
#    define UK_ROW(MRC) UK_FN(MRC, 1) UK_FN(MRC, 2) UK_FN(MRC, 3) UK_FN(MRC, 4)
UK_ROW(1)
UK_ROW(2)
UK_ROW(3)
UK_ROW(4)
UK_ROW(5)
UK_ROW(6)

typedef void (*uk_fn)(const uint32_t *, size_t, const uint16_t *, size_t, int, float *, int, int,
                      __mmask16);
static const uk_fn g_uk[MR][4] = {
    {uk_1_1, uk_1_2, uk_1_3, uk_1_4}, {uk_2_1, uk_2_2, uk_2_3, uk_2_4},
    {uk_3_1, uk_3_2, uk_3_3, uk_3_4}, {uk_4_1, uk_4_2, uk_4_3, uk_4_4},
    {uk_5_1, uk_5_2, uk_5_3, uk_5_4}, {uk_6_1, uk_6_2, uk_6_3, uk_6_4},
};

// A rows [0, mc) x k [kb, kb + kc) (kc even, or the odd tail of K) -> bf16 pairs in ab
// (row stride 2 * ap2 uint16), a zero high half for an odd tail.
BF16_TARGET static void pack_a(uint16_t *ab, size_t ap2, const float *A, int lda, int mc, int kb,
                               int kc) {
    for (int m = 0; m < mc; m++) {
        const float *s = A + (size_t)m * lda + kb;
        uint16_t *d = ab + (size_t)m * 2 * ap2;
        int k = 0;
        for (; k + 32 <= kc; k += 32) {
            const __m512 lo = _mm512_loadu_ps(s + k), hi = _mm512_loadu_ps(s + k + 16);
            _mm512_storeu_si512((void *)(d + k), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
        if (k < kc) {
            const int r = kc - k, rp = r + (r & 1);
            const __mmask16 ml = (__mmask16)(r >= 16 ? 0xffffu : (1u << r) - 1u);
            const __mmask16 mh = (__mmask16)(r > 16 ? (1u << (r - 16)) - 1u : 0u);
            const __m512 lo = _mm512_maskz_loadu_ps(ml, s + k);
            const __m512 hi = _mm512_maskz_loadu_ps(mh, s + k + 16);
            const __m512i v = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
            _mm512_mask_storeu_epi16((void *)(d + k), (__mmask32)((1ull << rp) - 1ull), v);
        }
    }
}

BF16_TARGET static void gemm_fast(int M, int N, int K, const float *A, int lda,
                                  const df_bf16_mat *B, int k0, int n0, float beta, float *C,
                                  int ldc) {
    const size_t ps = (size_t)B->kp * 16; // panel stride
    const int KCP = g_kc_pairs, MC = g_mc;
    const size_t ap2 = (size_t)KCP; // A block row stride in pairs
    if (g_abuf_elems < (size_t)MC * 2 * ap2) {
        df_free(g_abuf);
        g_abuf_elems = (size_t)MC * 2 * ap2;
        g_abuf = (uint16_t *)df_malloc(g_abuf_elems * sizeof(uint16_t));
        DF_ASSERT(g_abuf != NULL);
    }
    const uint32_t *a32 = (const uint32_t *)g_abuf;
    for (int mb = 0; mb < M; mb += MC) {
        const int mc = M - mb < MC ? M - mb : MC;
        for (int kb = 0; kb < K; kb += 2 * KCP) {
            const int kc = K - kb < 2 * KCP ? K - kb : 2 * KCP;
            const int np2 = (kc + 1) / 2, first = kb == 0 && beta == 0.0f;
            pack_a(g_abuf, ap2, A + (size_t)mb * lda, lda, mc, kb, kc);
            const uint16_t *bk = B->p + (size_t)((k0 + kb) / 2) * 32;
            for (int nb = 0; nb < N; nb += 64) {
                const int ncols = N - nb < 64 ? N - nb : 64, nv = (ncols + 15) / 16;
                const int rem = ncols - 16 * (nv - 1);
                const __mmask16 mlast = (__mmask16)(rem >= 16 ? 0xffffu : (1u << rem) - 1u);
                const uint16_t *b = bk + (size_t)((n0 + nb) / 16) * ps;
                for (int r = 0; r < mc; r += MR) {
                    const int mr = mc - r < MR ? mc - r : MR;
                    g_uk[mr - 1][nv - 1](a32 + (size_t)r * ap2, ap2, b, ps, np2,
                                         C + (size_t)(mb + r) * ldc + nb, ldc, first, mlast);
                }
            }
        }
    }
}
#endif

void df_bf16_set_blocking(int kc_pairs, int mc) {
    g_kc_pairs = kc_pairs > 0 ? kc_pairs : DF_BF16_KC_PAIRS;
    g_mc = mc > 0 ? (mc + MR - 1) / MR * MR : DF_BF16_MC;
}

void df_gemm_bf16_serial(int M, int N, int K, const float *A, int lda, const df_bf16_mat *B,
                         int k0, int n0, float beta, float *C, int ldc) {
    DF_ASSERT((k0 & 1) == 0 && (n0 & 15) == 0 && k0 + K <= B->K && n0 + N <= B->N);
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (beta == 0.0f)
            for (int m = 0; m < M; m++) memset(C + (size_t)m * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
#if DF_BF16_X86
    if (df_bf16_available()) {
        gemm_fast(M, N, K, A, lda, B, k0, n0, beta, C, ldc);
        return;
    }
#endif
    df_gemm_bf16_ref(M, N, K, A, lda, B, k0, n0, beta, C, ldc);
}

void df_gemm_bf16(int M, int N, int K, const float *A, int lda, const df_bf16_mat *B, int k0,
                  int n0, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    int split_n, ns;
    const int nt = df_gemm_par_plan(M, N, K, &split_n, &ns);
    if (nt <= 1) {
        df_gemm_bf16_serial(M, N, K, A, lda, B, k0, n0, beta, C, ldc);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int t = 0; t < ns; t++) {
        int m0, m1, c0, c1;
        df_gemm_slice(M, N, split_n, t, ns, &m0, &m1, &c0, &c1);
        if (m1 > m0 && c1 > c0)
            df_gemm_bf16_serial(m1 - m0, c1 - c0, K, A + (size_t)m0 * lda, lda, B, k0, n0 + c0,
                                beta, C + (size_t)m0 * ldc + c0, ldc);
    }
}

// Rows [m0, m1) x columns [n0, n1) of a linear layer: bias prefill (or accumulate), one GEMM.
static void linear_part(float *y, const float *x, const df_bf16_mat *w, const float *bias, int K,
                        int N, int accumulate, int m0, int m1, int n0, int n1) {
    float beta = 1.0f;
    const int nn = n1 - n0;
    if (bias) {
        for (int m = m0; m < m1; m++) {
            float *yr = y + (size_t)m * N + n0;
            if (accumulate)
                for (int n = 0; n < nn; n++) yr[n] += bias[n0 + n];
            else
                memcpy(yr, bias + n0, (size_t)nn * sizeof(float));
        }
    } else if (!accumulate) {
        beta = 0.0f;
    }
    df_gemm_bf16_serial(m1 - m0, nn, K, x + (size_t)m0 * K, K, w, 0, n0, beta,
                        y + (size_t)m0 * N + n0, N);
}

void df_linear_bf16(float *y, const float *x, const df_bf16_mat *w, const float *bias, int M,
                    int K, int N, int accumulate) {
    DF_ASSERT(M >= 0 && K >= 0 && N >= 0 && w->K == K && w->N == N);
    if (M == 0 || N == 0) return;
    int split_n, ns;
    const int nt = df_gemm_par_plan(M, N, K, &split_n, &ns);
    if (nt <= 1) {
        linear_part(y, x, w, bias, K, N, accumulate, 0, M, 0, N);
        return;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int t = 0; t < ns; t++) {
        int m0, m1, n0, n1;
        df_gemm_slice(M, N, split_n, t, ns, &m0, &m1, &n0, &n1);
        if (m1 > m0 && n1 > n0) linear_part(y, x, w, bias, K, N, accumulate, m0, m1, n0, n1);
    }
}
