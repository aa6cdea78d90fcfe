// Scaled dot-product attention (no mask), heads as contiguous channel blocks.
//
// Variants (core/cpu.h): the AVX2 and AVX-512 builds run their own register-blocked
// micro-kernels for both products, with the exp2 fused into the score kernel (see "Own-kernel
// path" below: 1 thread on Zen 4, ratio to sgemm 0.82 / 0.81 (AVX2, SDXL 10x64 / SD1.5 8x40) and
// 0.88 / 0.85 (AVX-512), against 0.78 / 0.72 with the OpenBLAS calls described next, which the
// portable build keeps).
//
// Fast kernel: flash-style online softmax. Work items are (head, block of bq <= DF_ATT_BQ
// queries); for each item the keys are visited in tiles of DF_ATT_BK. Scores are kept transposed
// (keys x queries) so the softmax statistics vectorize across queries without horizontal
// reductions, and the OpenBLAS kernels run at a better shape for these thin GEMMs (measured):
//   St = log2(e)/sqrt(HS) * K_tile Q_blk^T   (cblas_sgemm, lda = ldk, ldb = ldq)
//   first tile: m = colmax St; later tiles keep m as the reference unless a column sum of
//   2^(St - m) exceeds 2^DF_ATT_SLACK (then the tile is recomputed with m' = max(m, colmax St),
//   l *= 2^(m - m'), O *= 2^(m - m'))
//   P = 2^(St - m); l += colsum P
//   O += P^T V_tile                          (cblas_sgemm, ldb = ldv)
// and finally out = O / l. Later tiles get St = score - m straight from the GEMM: the exp pass
// that reads St writes P to a second buffer and refills St with -m, and the score GEMM runs with
// beta = 1 (no zeroing pass inside OpenBLAS; the subtraction is folded into the GEMM).
// Scratch per thread: 2 x [BK][bq] + O [bq][HS] + 4 [bq] floats, never O(Tq*Tk). Items run on
// OpenMP threads with OpenBLAS set to one thread for the duration (the pthread OpenBLAS must not
// fan out from inside an OpenMP region); a single item, or a call made from inside a parallel
// region, runs serially with OpenBLAS threading untouched. bq is halved (down to DF_ATT_BQ_MIN)
// while there are fewer than 3 items per thread.
// The exp2 is a vectorized polynomial (relative error < 1e-8 before float rounding), AVX-512
// intrinsics when available, else an `omp simd` loop. Denormals are flushed (FTZ/DAZ set per
// thread for the duration of the call, then restored): entries below 2^-126 of a row whose
// maximum is 1 cannot change the result, and denormal arithmetic is ~100x slower.
// Each item reads only its own Q rows/head block before writing the same out rows/head block, so
// out may alias q with ldo == ldq.
#include "kernels/kernels.h"
#include "kernels/kvariant.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__AVX2__) || defined(__SSE__)
#    include <immintrin.h>
#endif
#ifdef _OPENMP
#    include <omp.h>
#endif

// The AVX2 build runs its own micro-kernels (below), which prefer larger query blocks and
// shorter key tiles than the OpenBLAS calls of the other builds (measured, 1 thread: SDXL 10x64
// 0.77 -> 0.81, SD1.5 8x40 0.72 -> 0.79 of sgemm); its P tile, 64 x ~1040 floats, stays in L2.
#ifndef DF_ATT_OWN
#    if defined(__AVX2__) && defined(__FMA__)
#        define DF_ATT_OWN 1
#    else
#        define DF_ATT_OWN 0
#    endif
#endif
#define AT_OWN_BUILD DF_ATT_OWN
#ifndef DF_ATT_BQ
#    define DF_ATT_BQ (AT_OWN_BUILD ? 1024 : 512) // queries per work item (at most)
#endif
#ifndef DF_ATT_BQ_MIN
#    define DF_ATT_BQ_MIN 64 // smallest query block when splitting for more parallel items
#endif
#ifndef DF_ATT_BK
#    define DF_ATT_BK (AT_OWN_BUILD ? 64 : 256) // keys per tile
#endif
// How far (log2 units) a later tile's scores may exceed the running max before the exact
// rescaling path is taken: exp2 values up to 2^64 are harmless in float sums and GEMMs.
#define DF_ATT_SLACK 64.0f
#define AT_SLACK_POW2 1.8446744073709552e19f // 2^DF_ATT_SLACK

// exp2 for the shifted scores d = s - m (log2 domain: the QK^T GEMM is scaled by log2(e)/sqrt(HS)).
// Round-to-nearest range reduction d = n + r, |r| <= 1/2 (exact); 2^r by a degree-6 fit at the
// Chebyshev nodes (relative error 2.5e-9, ~0.6 ulp after float evaluation); times 2^n.
// Results below 2^-126 flush to 0 (nothing that small relative to a row maximum can change a
// float softmax); the scalar version clamps d to [-126, 127].
#define AT_C1 6.9314720670e-01f
#define AT_C2 2.4022650922e-01f
#define AT_C3 5.5503272267e-02f
#define AT_C4 9.6180566785e-03f
#define AT_C5 1.3400428177e-03f
#define AT_C6 1.5461444696e-04f
static inline float at_exp2f(float d) {
    d = d < -126.0f ? -126.0f : d;
    d = d > 127.0f ? 127.0f : d;
    const float n = (d + 12582912.0f) - 12582912.0f; // round to nearest, |d| < 2^22
    const float r = d - n;
    float p = AT_C6;
    p = fmaf(p, r, AT_C5);
    p = fmaf(p, r, AT_C4);
    p = fmaf(p, r, AT_C3);
    p = fmaf(p, r, AT_C2);
    p = fmaf(p, r, AT_C1);
    p = fmaf(p, r, 1.0f);
    const int32_t e = ((int32_t)n + 127) << 23; // 2^n, n in [-126, 127]
    float sc;
    memcpy(&sc, &e, sizeof sc);
    return d <= -126.0f ? 0.0f : p * sc;
}

#if defined(__AVX2__) && defined(__FMA__)
// AVX2 + FMA: the same polynomial on 8 lanes; 2^n built in the exponent bits (d clamped to
// [-127, 127]: n = -127 gives the bit pattern 0, i.e. the flush to 0; NaN becomes -127 -> 0).
static inline __m256 at_exp2_8(__m256 d) {
    d = _mm256_max_ps(d, _mm256_set1_ps(-127.0f));
    d = _mm256_min_ps(d, _mm256_set1_ps(127.0f));
    const __m256 n = _mm256_round_ps(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_sub_ps(d, n);
    __m256 p = _mm256_set1_ps(AT_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(AT_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(AT_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(AT_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(AT_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(AT_C1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                         _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256i at_mask8(int w) { // lanes [0, w) of 8 as a maskload mask
    static const int32_t tbl[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    w = w < 0 ? 0 : w > 8 ? 8 : w;
    return _mm256_loadu_si256((const __m256i *)(const void *)(tbl + 8 - w));
}

// Masked loads/stores only in the last, partial column block: vmaskmovps stores are slow
// (microcoded on AMD Zen); `full` is a compile-time constant after inlining.
#    define AT_LD(k, p) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (k)))
#    define AT_ST(k, p, v)                                                                     \
        do {                                                                                   \
            if (full) _mm256_storeu_ps((p), (v));                                              \
            else _mm256_maskstore_ps((p), (k), (v));                                           \
        } while (0)

static inline void at_col_max_blk(float *mx, const float *St, int nk, int nq, size_t ld,
                                  int i0, const int full) {
    const int w = nq - i0;
    const __m256i k0 = at_mask8(w), k1 = at_mask8(w - 8), k2 = at_mask8(w - 16),
                  k3 = at_mask8(w - 24);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    for (int j = 0; j < nk; j++) {
        const float *row = St + (size_t)j * ld + i0;
        m0 = _mm256_max_ps(m0, AT_LD(k0, row));
        m1 = _mm256_max_ps(m1, AT_LD(k1, row + 8));
        m2 = _mm256_max_ps(m2, AT_LD(k2, row + 16));
        m3 = _mm256_max_ps(m3, AT_LD(k3, row + 24));
    }
    AT_ST(k0, mx + i0, m0);
    AT_ST(k1, mx + i0 + 8, m1);
    AT_ST(k2, mx + i0 + 16, m2);
    AT_ST(k3, mx + i0 + 24, m3);
}

// St [nk] rows of stride ld, columns [0, nq).
static inline void at_col_max_ld(float *mx, const float *St, int nk, int nq, size_t ld) {
    int i0 = 0;
    for (; i0 + 32 <= nq; i0 += 32) at_col_max_blk(mx, St, nk, nq, ld, i0, 1);
    if (i0 < nq) at_col_max_blk(mx, St, nk, nq, ld, i0, 0);
}


// See the AVX-512 version. sub != 0: P = exp2(S - m) (first tile), else P = exp2(S) (S was
// prefilled with -m). Returns 1 if some column sum exceeds 2^DF_ATT_SLACK.
static inline __m256 at_col_exp2_blk(float *sum, float *P, float *S, int nk, int nq, size_t ld,
                                     const float *m, int refill, int sub, int i0, const int full) {
    __m256 overv = _mm256_setzero_ps();
    const __m256 lim = _mm256_set1_ps(AT_SLACK_POW2);
    {
        const int w = nq - i0;
        const __m256i k0 = at_mask8(w), k1 = at_mask8(w - 8), k2 = at_mask8(w - 16),
                      k3 = at_mask8(w - 24);
        const __m256 zero = _mm256_setzero_ps();
        const __m256 m0 = AT_LD(k0, m + i0), m1 = AT_LD(k1, m + i0 + 8);
        const __m256 m2 = AT_LD(k2, m + i0 + 16), m3 = AT_LD(k3, m + i0 + 24);
        const __m256 n0 = _mm256_sub_ps(zero, m0), n1 = _mm256_sub_ps(zero, m1);
        const __m256 n2 = _mm256_sub_ps(zero, m2), n3 = _mm256_sub_ps(zero, m3);
        const __m256 s0m = sub ? m0 : zero, s1m = sub ? m1 : zero;
        const __m256 s2m = sub ? m2 : zero, s3m = sub ? m3 : zero;
        __m256 s0 = zero, s1 = zero, s2 = zero, s3 = zero;
        for (int j = 0; j < nk; j++) {
            float *row = S + (size_t)j * ld + i0;
            float *prow = P + (size_t)j * ld + i0;
            const __m256 e0 = at_exp2_8(_mm256_sub_ps(AT_LD(k0, row), s0m));
            const __m256 e1 = at_exp2_8(_mm256_sub_ps(AT_LD(k1, row + 8), s1m));
            const __m256 e2 = at_exp2_8(_mm256_sub_ps(AT_LD(k2, row + 16), s2m));
            const __m256 e3 = at_exp2_8(_mm256_sub_ps(AT_LD(k3, row + 24), s3m));
            AT_ST(k0, prow, e0);
            AT_ST(k1, prow + 8, e1);
            AT_ST(k2, prow + 16, e2);
            AT_ST(k3, prow + 24, e3);
            if (refill) {
                AT_ST(k0, row, n0);
                AT_ST(k1, row + 8, n1);
                AT_ST(k2, row + 16, n2);
                AT_ST(k3, row + 24, n3);
            }
            s0 = _mm256_add_ps(s0, e0);
            s1 = _mm256_add_ps(s1, e1);
            s2 = _mm256_add_ps(s2, e2);
            s3 = _mm256_add_ps(s3, e3);
        }
        // masked-off lanes load 0 and sum to nk <= limit; NaN compares false
        overv = _mm256_or_ps(overv, _mm256_cmp_ps(s0, lim, _CMP_GT_OQ));
        overv = _mm256_or_ps(overv, _mm256_cmp_ps(s1, lim, _CMP_GT_OQ));
        overv = _mm256_or_ps(overv, _mm256_cmp_ps(s2, lim, _CMP_GT_OQ));
        overv = _mm256_or_ps(overv, _mm256_cmp_ps(s3, lim, _CMP_GT_OQ));
        AT_ST(k0, sum + i0, s0);
        AT_ST(k1, sum + i0 + 8, s1);
        AT_ST(k2, sum + i0 + 16, s2);
        AT_ST(k3, sum + i0 + 24, s3);
    }
    return overv;
}

static inline int at_col_exp2_8(float *sum, float *P, float *S, int nk, int nq, size_t ld,
                                const float *m, int refill, int sub) {
    __m256 over = _mm256_setzero_ps();
    int i0 = 0;
    for (; i0 + 32 <= nq; i0 += 32)
        over = _mm256_or_ps(over, at_col_exp2_blk(sum, P, S, nk, nq, ld, m, refill, sub, i0, 1));
    if (i0 < nq)
        over = _mm256_or_ps(over, at_col_exp2_blk(sum, P, S, nk, nq, ld, m, refill, sub, i0, 0));
    return _mm256_movemask_ps(over) != 0;
}
#    undef AT_LD
#    undef AT_ST
#endif

#if defined(__AVX512F__)
// Same polynomial, 16 lanes; vscalefps applies 2^n (0 for n far below, with FTZ).
static inline __m512 at_exp2_16(__m512 d) {
    const __m512 n = _mm512_roundscale_ps(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 r = _mm512_sub_ps(d, n);
    __m512 p = _mm512_set1_ps(AT_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(AT_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(AT_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(AT_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(AT_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(AT_C1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __mmask16 at_mask(int w) { // lanes [0, w) of 16, w may be <= 0 or >= 16
    return w >= 16 ? (__mmask16)0xFFFF : w <= 0 ? (__mmask16)0 : (__mmask16)((1u << w) - 1u);
}

// St [nk][nq] (row stride nq): mx[i] = max_j St[j][i]. Column blocks of 64 kept in registers.
static void at_col_max(float *mx, const float *St, int nk, int nq) {
    for (int i0 = 0; i0 < nq; i0 += 64) {
        const int w = nq - i0;
        const __mmask16 k0 = at_mask(w), k1 = at_mask(w - 16), k2 = at_mask(w - 32),
                        k3 = at_mask(w - 48);
        const __m512 ninf = _mm512_set1_ps(-INFINITY);
        __m512 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
        for (int j = 0; j < nk; j++) {
            const float *row = St + (size_t)j * (size_t)nq + i0;
            m0 = _mm512_max_ps(m0, _mm512_maskz_loadu_ps(k0, row));
            m1 = _mm512_max_ps(m1, _mm512_maskz_loadu_ps(k1, row + 16));
            m2 = _mm512_max_ps(m2, _mm512_maskz_loadu_ps(k2, row + 32));
            m3 = _mm512_max_ps(m3, _mm512_maskz_loadu_ps(k3, row + 48));
        }
        _mm512_mask_storeu_ps(mx + i0, k0, m0);
        _mm512_mask_storeu_ps(mx + i0 + 16, k1, m1);
        _mm512_mask_storeu_ps(mx + i0 + 32, k2, m2);
        _mm512_mask_storeu_ps(mx + i0 + 48, k3, m3);
    }
}

// Tiles after the first, S prefilled with -m (the GEMM ran with beta = 1, so S = score - m):
// P[j][i] = exp2(S[j][i]); sum[i] = column sums; then S[j][i] = -m[i] again when `refill` (the
// next tile's prefill, so the GEMM needs no zeroing pass). Returns 1 (P then unusable) if some
// column sum exceeds 2^DF_ATT_SLACK (so does any entry above that, or an overflow to inf), else
// 0: then every P entry and sum is at most 2^DF_ATT_SLACK.
static int at_col_exp2_pf(float *sum, float *P, float *S, int nk, int nq, const float *m,
                          int refill) {
    int over = 0;
    const __m512 lim = _mm512_set1_ps(AT_SLACK_POW2);
    for (int i0 = 0; i0 < nq; i0 += 64) {
        const int w = nq - i0;
        const __mmask16 k0 = at_mask(w), k1 = at_mask(w - 16), k2 = at_mask(w - 32),
                        k3 = at_mask(w - 48);
        const __m512 zero = _mm512_setzero_ps();
        const __m512 n0 = _mm512_sub_ps(zero, _mm512_maskz_loadu_ps(k0, m + i0));
        const __m512 n1 = _mm512_sub_ps(zero, _mm512_maskz_loadu_ps(k1, m + i0 + 16));
        const __m512 n2 = _mm512_sub_ps(zero, _mm512_maskz_loadu_ps(k2, m + i0 + 32));
        const __m512 n3 = _mm512_sub_ps(zero, _mm512_maskz_loadu_ps(k3, m + i0 + 48));
        __m512 s0 = zero, s1 = zero, s2 = zero, s3 = zero;
        for (int j = 0; j < nk; j++) {
            float *row = S + (size_t)j * (size_t)nq + i0;
            float *prow = P + (size_t)j * (size_t)nq + i0;
            const __m512 d0 = _mm512_maskz_loadu_ps(k0, row);
            const __m512 d1 = _mm512_maskz_loadu_ps(k1, row + 16);
            const __m512 d2 = _mm512_maskz_loadu_ps(k2, row + 32);
            const __m512 d3 = _mm512_maskz_loadu_ps(k3, row + 48);
            const __m512 e0 = at_exp2_16(d0), e1 = at_exp2_16(d1);
            const __m512 e2 = at_exp2_16(d2), e3 = at_exp2_16(d3);
            _mm512_mask_storeu_ps(prow, k0, e0);
            _mm512_mask_storeu_ps(prow + 16, k1, e1);
            _mm512_mask_storeu_ps(prow + 32, k2, e2);
            _mm512_mask_storeu_ps(prow + 48, k3, e3);
            if (refill) {
                _mm512_mask_storeu_ps(row, k0, n0);
                _mm512_mask_storeu_ps(row + 16, k1, n1);
                _mm512_mask_storeu_ps(row + 32, k2, n2);
                _mm512_mask_storeu_ps(row + 48, k3, n3);
            }
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
            s2 = _mm512_add_ps(s2, e2);
            s3 = _mm512_add_ps(s3, e3);
        }
        // masked-off lanes sum to nk (exp2 of 0) <= limit; NaN compares false (no fallback)
        over |= _mm512_cmp_ps_mask(s0, lim, _CMP_GT_OQ) | _mm512_cmp_ps_mask(s1, lim, _CMP_GT_OQ) |
                _mm512_cmp_ps_mask(s2, lim, _CMP_GT_OQ) | _mm512_cmp_ps_mask(s3, lim, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(sum + i0, k0, s0);
        _mm512_mask_storeu_ps(sum + i0 + 16, k1, s1);
        _mm512_mask_storeu_ps(sum + i0 + 32, k2, s2);
        _mm512_mask_storeu_ps(sum + i0 + 48, k3, s3);
    }
    return over != 0;
}

// First tile (or after a rescale): P[j][i] = exp2(S[j][i] - m[i]); sum[i] = column sums; then
// S[j][i] = -m[i] when `refill`. P may equal S only without refill.
static void at_col_exp2_to(float *sum, float *P, float *S, int nk, int nq, const float *m,
                           int refill) {
    for (int i0 = 0; i0 < nq; i0 += 64) {
        const int w = nq - i0;
        const __mmask16 k0 = at_mask(w), k1 = at_mask(w - 16), k2 = at_mask(w - 32),
                        k3 = at_mask(w - 48);
        const __m512 zero = _mm512_setzero_ps();
        const __m512 m0 = _mm512_maskz_loadu_ps(k0, m + i0);
        const __m512 m1 = _mm512_maskz_loadu_ps(k1, m + i0 + 16);
        const __m512 m2 = _mm512_maskz_loadu_ps(k2, m + i0 + 32);
        const __m512 m3 = _mm512_maskz_loadu_ps(k3, m + i0 + 48);
        const __m512 n0 = _mm512_sub_ps(zero, m0), n1 = _mm512_sub_ps(zero, m1);
        const __m512 n2 = _mm512_sub_ps(zero, m2), n3 = _mm512_sub_ps(zero, m3);
        __m512 s0 = zero, s1 = zero, s2 = zero, s3 = zero;
        for (int j = 0; j < nk; j++) {
            float *row = S + (size_t)j * (size_t)nq + i0;
            float *prow = P + (size_t)j * (size_t)nq + i0;
            const __m512 e0 = at_exp2_16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k0, row), m0));
            const __m512 e1 = at_exp2_16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k1, row + 16), m1));
            const __m512 e2 = at_exp2_16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k2, row + 32), m2));
            const __m512 e3 = at_exp2_16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k3, row + 48), m3));
            _mm512_mask_storeu_ps(prow, k0, e0);
            _mm512_mask_storeu_ps(prow + 16, k1, e1);
            _mm512_mask_storeu_ps(prow + 32, k2, e2);
            _mm512_mask_storeu_ps(prow + 48, k3, e3);
            if (refill) {
                _mm512_mask_storeu_ps(row, k0, n0);
                _mm512_mask_storeu_ps(row + 16, k1, n1);
                _mm512_mask_storeu_ps(row + 32, k2, n2);
                _mm512_mask_storeu_ps(row + 48, k3, n3);
            }
            s0 = _mm512_add_ps(s0, e0);
            s1 = _mm512_add_ps(s1, e1);
            s2 = _mm512_add_ps(s2, e2);
            s3 = _mm512_add_ps(s3, e3);
        }
        _mm512_mask_storeu_ps(sum + i0, k0, s0);
        _mm512_mask_storeu_ps(sum + i0 + 16, k1, s1);
        _mm512_mask_storeu_ps(sum + i0 + 32, k2, s2);
        _mm512_mask_storeu_ps(sum + i0 + 48, k3, s3);
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
static void at_col_max(float *mx, const float *St, int nk, int nq) {
    at_col_max_ld(mx, St, nk, nq, (size_t)nq);
}

static int at_col_exp2_pf(float *sum, float *P, float *S, int nk, int nq, const float *m,
                          int refill) {
    return at_col_exp2_8(sum, P, S, nk, nq, (size_t)nq, m, refill, 0);
}

static void at_col_exp2_to(float *sum, float *P, float *S, int nk, int nq, const float *m,
                           int refill) {
    (void)at_col_exp2_8(sum, P, S, nk, nq, (size_t)nq, m, refill, 1);
}
#else
static void at_col_max(float *mx, const float *St, int nk, int nq) {
    for (int i = 0; i < nq; i++) mx[i] = -INFINITY;
    for (int j = 0; j < nk; j++) {
        const float *row = St + (size_t)j * (size_t)nq;
#    pragma omp simd
        for (int i = 0; i < nq; i++) mx[i] = row[i] > mx[i] ? row[i] : mx[i];
    }
}

static int at_col_exp2_pf(float *sum, float *P, float *S, int nk, int nq, const float *m,
                          int refill) {
    for (int i = 0; i < nq; i++) sum[i] = 0.0f;
    for (int j = 0; j < nk; j++) {
        float *row = S + (size_t)j * (size_t)nq;
        float *prow = P + (size_t)j * (size_t)nq;
#    pragma omp simd
        for (int i = 0; i < nq; i++) {
            const float e = at_exp2f(row[i]);
            prow[i] = e;
            sum[i] += e;
            if (refill) row[i] = -m[i];
        }
    }
    int over = 0;
    for (int i = 0; i < nq; i++) over |= sum[i] > AT_SLACK_POW2;
    return over;
}

static void at_col_exp2_to(float *sum, float *P, float *S, int nk, int nq, const float *m,
                           int refill) {
    for (int i = 0; i < nq; i++) sum[i] = 0.0f;
    for (int j = 0; j < nk; j++) {
        float *row = S + (size_t)j * (size_t)nq;
        float *prow = P + (size_t)j * (size_t)nq;
#    pragma omp simd
        for (int i = 0; i < nq; i++) {
            const float e = at_exp2f(row[i] - m[i]);
            prow[i] = e;
            sum[i] += e;
            if (refill) row[i] = -m[i];
        }
    }
}
#endif

typedef struct at_args {
    float *out;
    const float *q, *k, *v;
    int ldo, ldq, ldk, ldv, Tq, Tk, NH, HS;
    int bq;      // query block of one work item
    float scale; // log2(e) / sqrt(HS)
} at_args;

// Per-thread scratch.
typedef struct at_scratch {
    float *St;              // [BK][bq] scores, transposed (keys x queries)
    float *P;               // [BK][bq] probabilities (multi-tile path)
    float *O;               // [bq][HS] unnormalized output ([HS][bqp] in the AVX2 path)
    float *Qt;              // [HS][bqp] transposed query block (AVX2 path)
    float *Vp, *Kp;         // [HS][BK] packed V and K tiles (AVX2 path)
    float *m, *l, *t1, *t2; // [bqp] running max, running sum, tile max / rescale, tile sum
} at_scratch;

#if AT_OWN_BUILD
// Own-kernel path (the AVX2 and AVX-512 builds): our register-blocked GEMMs instead of OpenBLAS
// for the two thin products (its packing copies of the K/V tiles and the query block, redone for
// every call, cost ~15%), the exp2 of the later tiles fused into the score kernel, and everything
// transposed so that vectors run along queries:
//   St/P [nk][ld] = K_tile Qt          (Qt [HS][ld]: the query block, transposed once per item)
//   Ot   [HS][ld] += V_tile^T P        (the output, transposed back at the end)
// Columns: nqv = nq rounded up to AT_CB (padding queries are zero, their results dropped); row
// stride ld = nqv + 16 (one cache line more, so the column strips the micro-kernels walk down do
// not all map to the same L1 sets). Micro-kernel: R <= AT_RMAX rows x AT_CB columns (two vectors
// per row): AVX2 6 x 16 in 12 ymm, AVX-512 12 x 32 in 24 zmm. K and V tiles are packed per block
// of AT_RMAX rows so the broadcasts read one sequential stream.
#    define AT_OWN_GEMM 1
#    define AT_AI static inline __attribute__((always_inline))
#    if defined(__AVX512F__)
typedef __m512 at_v;
#        define AT_VW 16
#        define AT_RMAX 12
#        define AV_LOAD(p) _mm512_loadu_ps(p)
#        define AV_STORE(p, v) _mm512_storeu_ps((p), (v))
#        define AV_BCAST(p) _mm512_set1_ps(*(p))
#        define AV_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#        define AV_FMSUB(a, b, c) _mm512_fmsub_ps((a), (b), (c))
#        define AV_ADD(a, b) _mm512_add_ps((a), (b))
#        define AV_MUL(a, b) _mm512_mul_ps((a), (b))
#        define AV_ZERO() _mm512_setzero_ps()
#        define AV_SET1(x) _mm512_set1_ps(x)
#        define AV_EXP2(d) at_exp2_16(d)
#        define AV_OVER(s, lim) ((int)_mm512_cmp_ps_mask((s), (lim), _CMP_GT_OQ))
#    else
typedef __m256 at_v;
#        define AT_VW 8
#        define AT_RMAX 6
#        define AV_LOAD(p) _mm256_loadu_ps(p)
#        define AV_STORE(p, v) _mm256_storeu_ps((p), (v))
#        define AV_BCAST(p) _mm256_broadcast_ss(p)
#        define AV_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#        define AV_FMSUB(a, b, c) _mm256_fmsub_ps((a), (b), (c))
#        define AV_ADD(a, b) _mm256_add_ps((a), (b))
#        define AV_MUL(a, b) _mm256_mul_ps((a), (b))
#        define AV_ZERO() _mm256_setzero_ps()
#        define AV_SET1(x) _mm256_set1_ps(x)
#        define AV_EXP2(d) at_exp2_8(d)
#        define AV_OVER(s, lim) _mm256_movemask_ps(_mm256_cmp_ps((s), (lim), _CMP_GT_OQ))
#    endif
#    define AT_CB (2 * AT_VW) // columns per micro-kernel block

// acc[2r], acc[2r+1] = sum_t A[r*ars + t*ats] * B[t*ldb + 0..AT_CB-1], r < R.
AT_AI void at_mk(at_v acc[2 * AT_RMAX], const int R, const float *A, size_t ars, size_t ats,
                 const float *B, size_t ldb, int T) {
    for (int r = 0; r < R; r++) acc[2 * r] = acc[2 * r + 1] = AV_ZERO();
    for (int t = 0; t < T; t++) {
        const at_v b0 = AV_LOAD(B + (size_t)t * ldb);
        const at_v b1 = AV_LOAD(B + (size_t)t * ldb + AT_VW);
        for (int r = 0; r < R; r++) {
            const at_v av = AV_BCAST(A + (size_t)r * ars + (size_t)t * ats);
            acc[2 * r] = AV_FMA(av, b0, acc[2 * r]);
            acc[2 * r + 1] = AV_FMA(av, b1, acc[2 * r + 1]);
        }
    }
}

// Score block: R keys of the packed tile (block [HS][R]), columns ib..ib+AT_CB-1. fused == 0:
// dst = scale * score; fused: dst = P = exp2(scale * score - m), column sums added to s[0..1].
AT_AI void at_score_blk(const int R, const float *kb, const float *Qt, size_t ld, int HS,
                        float scale, float *dst, int fused, const at_v mv[2], at_v s[2]) {
    at_v acc[2 * AT_RMAX];
    at_mk(acc, R, kb, 1, (size_t)R, Qt, ld, HS);
    const at_v sc = AV_SET1(scale);
    for (int r = 0; r < R; r++) {
        float *d = dst + (size_t)r * ld;
        if (!fused) {
            AV_STORE(d, AV_MUL(acc[2 * r], sc));
            AV_STORE(d + AT_VW, AV_MUL(acc[2 * r + 1], sc));
        } else {
            const at_v e0 = AV_EXP2(AV_FMSUB(acc[2 * r], sc, mv[0]));
            const at_v e1 = AV_EXP2(AV_FMSUB(acc[2 * r + 1], sc, mv[1]));
            AV_STORE(d, e0);
            AV_STORE(d + AT_VW, e1);
            s[0] = AV_ADD(s[0], e0);
            s[1] = AV_ADD(s[1], e1);
        }
    }
}

// Calls BLK(R, ...) for the remainder rows R = rem in 1..AT_RMAX-1 (constant R per call).
#    define AT_REM(rem, BLK, ...)                                                               \
        switch (rem) {                                                                         \
        case 1: BLK(1, __VA_ARGS__); break;                                                    \
        case 2: BLK(2, __VA_ARGS__); break;                                                    \
        case 3: BLK(3, __VA_ARGS__); break;                                                    \
        case 4: BLK(4, __VA_ARGS__); break;                                                    \
        case 5: BLK(5, __VA_ARGS__); break;                                                    \
        case 6: if (AT_RMAX > 6) BLK(6 < AT_RMAX ? 6 : 1, __VA_ARGS__); break;                 \
        case 7: if (AT_RMAX > 7) BLK(7 < AT_RMAX ? 7 : 1, __VA_ARGS__); break;                 \
        case 8: if (AT_RMAX > 8) BLK(8 < AT_RMAX ? 8 : 1, __VA_ARGS__); break;                 \
        case 9: if (AT_RMAX > 9) BLK(9 < AT_RMAX ? 9 : 1, __VA_ARGS__); break;                 \
        case 10: if (AT_RMAX > 10) BLK(10 < AT_RMAX ? 10 : 1, __VA_ARGS__); break;             \
        case 11: if (AT_RMAX > 11) BLK(11 < AT_RMAX ? 11 : 1, __VA_ARGS__); break;             \
        default: break;                                                                        \
        }

// Kp: the K tile packed per block of AT_RMAX keys: block j0 holds [HS][R] (R = min(AT_RMAX,
// nk-j0)) at Kp + j0*HS.
static void at_pack_k(float *Kp, const float *kt, size_t ldk, int nk, int HS) {
    for (int j0 = 0; j0 < nk; j0 += AT_RMAX) {
        const int R = nk - j0 < AT_RMAX ? nk - j0 : AT_RMAX;
        float *d = Kp + (size_t)j0 * (size_t)HS;
        for (int r = 0; r < R; r++) {
            const float *kr = kt + (size_t)(j0 + r) * ldk;
            for (int c = 0; c < HS; c++) d[(size_t)c * R + r] = kr[c];
        }
    }
}

// The score tile [nk][ld] (columns [0, nqv)) from the packed K tile. fused: into P with exp2,
// tsum = column sums; returns 1 if a column sum exceeds 2^DF_ATT_SLACK. Else dst = St, scaled
// scores (returns 0).
static int at_scores(const float *Kp, const float *Qt, int nqv, int ld, int HS, int nk,
                     float scale, float *dst, int fused, const float *m, float *tsum) {
    const at_v lim = AV_SET1(AT_SLACK_POW2);
    int over = 0;
    for (int ib = 0; ib < nqv; ib += AT_CB) {
        at_v mv[2] = {AV_ZERO(), AV_ZERO()};
        if (fused) mv[0] = AV_LOAD(m + ib), mv[1] = AV_LOAD(m + ib + AT_VW);
        at_v sv[2] = {AV_ZERO(), AV_ZERO()};
        const float *qb = Qt + ib;
        int j = 0;
        for (; j + AT_RMAX <= nk; j += AT_RMAX)
            at_score_blk(AT_RMAX, Kp + (size_t)j * HS, qb, (size_t)ld, HS, scale,
                         dst + (size_t)j * ld + ib, fused, mv, sv);
        const float *kr = Kp + (size_t)j * HS;
        float *dr = dst + (size_t)j * ld + ib;
#    define AT_SB(R, ...) at_score_blk(R, __VA_ARGS__)
        AT_REM(nk - j, AT_SB, kr, qb, (size_t)ld, HS, scale, dr, fused, mv, sv)
#    undef AT_SB
        if (fused) {
            over |= AV_OVER(sv[0], lim) | AV_OVER(sv[1], lim);
            AV_STORE(tsum + ib, sv[0]);
            AV_STORE(tsum + ib + AT_VW, sv[1]);
        }
    }
    return over != 0;
}

// Ot rows c0..c0+R (packed V block [nk][R]), columns ib.. += sum_j V[j][c] P[j][ib..].
AT_AI void at_pv_blk(const int R, const float *vb, const float *P, size_t ld, int nk,
                     float *ot) {
    at_v acc[2 * AT_RMAX];
    at_mk(acc, R, vb, 1, (size_t)R, P, ld, nk);
    for (int r = 0; r < R; r++) {
        float *d = ot + (size_t)r * ld;
        AV_STORE(d, AV_ADD(AV_LOAD(d), acc[2 * r]));
        AV_STORE(d + AT_VW, AV_ADD(AV_LOAD(d + AT_VW), acc[2 * r + 1]));
    }
}

// Vp: the V tile packed per block of AT_RMAX channels: block c0 holds [nk][R] (R = min(AT_RMAX,
// HS-c0)) at Vp + c0*nk.
static void at_pack_v(float *Vp, const float *vt, size_t ldv, int nk, int HS) {
    for (int c0 = 0; c0 < HS; c0 += AT_RMAX) {
        const int R = HS - c0 < AT_RMAX ? HS - c0 : AT_RMAX;
        float *d = Vp + (size_t)c0 * (size_t)nk;
        for (int j = 0; j < nk; j++)
            for (int r = 0; r < R; r++) d[(size_t)j * R + r] = vt[(size_t)j * ldv + c0 + r];
    }
}

static void at_pv(float *Ot, const float *Vp, const float *P, int nqv, int ld, int nk, int HS) {
    for (int ib = 0; ib < nqv; ib += AT_CB) {
        int c = 0;
        for (; c + AT_RMAX <= HS; c += AT_RMAX)
            at_pv_blk(AT_RMAX, Vp + (size_t)c * nk, P + ib, (size_t)ld, nk,
                      Ot + (size_t)c * ld + ib);
        const float *vc = Vp + (size_t)c * nk;
        float *oc = Ot + (size_t)c * ld + ib;
#    define AT_PB(R, ...) at_pv_blk(R, __VA_ARGS__)
        AT_REM(HS - c, AT_PB, vc, P + ib, (size_t)ld, nk, oc)
#    undef AT_PB
    }
}

// One work item on the own-kernel path; the same online softmax as at_item.
static void at_item_own(const at_args *a, const at_scratch *w, int h, int i0, int nq) {
    const int HS = a->HS, nqv = (nq + AT_CB - 1) / AT_CB * AT_CB, ld = nqv + 16;
    const float *q = a->q + (size_t)i0 * (size_t)a->ldq + (size_t)h * (size_t)HS;
    const float *kh = a->k + (size_t)h * (size_t)HS;
    const float *vh = a->v + (size_t)h * (size_t)HS;
    float *St = w->St, *P = w->P, *Ot = w->O, *Qt = w->Qt, *m = w->m, *l = w->l, *tmax = w->t1,
          *tsum = w->t2;
    for (int c = 0; c < HS; c++) {
        float *qr = Qt + (size_t)c * ld;
        for (int i = 0; i < nq; i++) qr[i] = q[(size_t)i * (size_t)a->ldq + (size_t)c];
        for (int i = nq; i < nqv; i++) qr[i] = 0.0f;
    }
    for (int c = 0; c < HS; c++) memset(Ot + (size_t)c * ld, 0, (size_t)nqv * sizeof(float));
    for (int j0 = 0; j0 < a->Tk; j0 += DF_ATT_BK) {
        const int nk = a->Tk - j0 < DF_ATT_BK ? a->Tk - j0 : DF_ATT_BK;
        at_pack_k(w->Kp, kh + (size_t)j0 * (size_t)a->ldk, (size_t)a->ldk, nk, HS);
        if (j0 == 0) {
            at_scores(w->Kp, Qt, nqv, ld, HS, nk, a->scale, St, 0, NULL, NULL);
            at_col_max_ld(m, St, nk, nqv, (size_t)ld);
            (void)at_col_exp2_8(l, P, St, nk, nqv, (size_t)ld, m, 0, 1);
        } else if (!at_scores(w->Kp, Qt, nqv, ld, HS, nk, a->scale, P, 1, m, tsum)) {
            for (int i = 0; i < nqv; i++) l[i] += tsum[i];
        } else {
            // rare: scores jumped far above the running max; recompute the tile and rescale
            at_scores(w->Kp, Qt, nqv, ld, HS, nk, a->scale, St, 0, NULL, NULL);
            at_col_max_ld(tmax, St, nk, nqv, (size_t)ld);
            float *alpha = tmax; // reused: rescale factor 2^(m_old - m_new) per query
            for (int i = 0; i < nqv; i++) {
                const float mnew = tmax[i] > m[i] ? tmax[i] : m[i];
                alpha[i] = at_exp2f(m[i] - mnew);
                m[i] = mnew;
            }
            (void)at_col_exp2_8(tsum, P, St, nk, nqv, (size_t)ld, m, 0, 1);
            for (int i = 0; i < nqv; i++) l[i] = l[i] * alpha[i] + tsum[i];
            for (int c = 0; c < HS; c++) {
                float *o = Ot + (size_t)c * ld;
                for (int i = 0; i < nqv; i++) o[i] *= alpha[i];
            }
        }
        at_pack_v(w->Vp, vh + (size_t)j0 * (size_t)a->ldv, (size_t)a->ldv, nk, HS);
        at_pv(Ot, w->Vp, P, nqv, ld, nk, HS);
    }
    for (int i = 0; i < nq; i++) tmax[i] = 1.0f / l[i];
    float *out = a->out + (size_t)i0 * (size_t)a->ldo + (size_t)h * (size_t)HS;
    for (int i = 0; i < nq; i++) {
        float *dst = out + (size_t)i * (size_t)a->ldo;
        const float inv = tmax[i];
        for (int c = 0; c < HS; c++) dst[c] = Ot[(size_t)c * ld + i] * inv;
    }
}
#    undef AT_AI
#else
#    define AT_OWN_GEMM 0
#endif

// One work item: head h, queries [i0, i0+nq).
static void at_item(const at_args *a, const at_scratch *w, int h, int i0, int nq) {
#if AT_OWN_GEMM
    at_item_own(a, w, h, i0, nq);
    return;
#endif
    const int HS = a->HS;
    const float *q = a->q + (size_t)i0 * (size_t)a->ldq + (size_t)h * (size_t)HS;
    const float *kh = a->k + (size_t)h * (size_t)HS;
    const float *vh = a->v + (size_t)h * (size_t)HS;
    float *St = w->St, *P = w->P, *O = w->O, *m = w->m, *l = w->l, *tmax = w->t1,
          *tsum = w->t2;
    float *out = a->out + (size_t)i0 * (size_t)a->ldo + (size_t)h * (size_t)HS;
    if (a->Tk <= DF_ATT_BK) {
        // single key tile (cross-attention): plain softmax, normalize P, GEMM straight into out
        const int nk = a->Tk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nk, nq, HS, a->scale, kh, a->ldk, q,
                    a->ldq, 0.0f, St, nq);
        at_col_max(m, St, nk, nq);
        at_col_exp2_to(l, St, St, nk, nq, m, 0);
        for (int i = 0; i < nq; i++) l[i] = 1.0f / l[i];
        for (int j = 0; j < nk; j++) {
            float *row = St + (size_t)j * (size_t)nq;
#pragma omp simd
            for (int i = 0; i < nq; i++) row[i] *= l[i];
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nq, HS, nk, 1.0f, St, nq, vh, a->ldv,
                    0.0f, out, a->ldo);
        return;
    }
    // Multi-tile: after the first tile St holds -m (written by the exp pass), so the score GEMM
    // runs with beta = 1 and yields score - m directly, without a zeroing pass.
    for (int j0 = 0; j0 < a->Tk; j0 += DF_ATT_BK) {
        const int nk = a->Tk - j0 < DF_ATT_BK ? a->Tk - j0 : DF_ATT_BK;
        const int refill = j0 + DF_ATT_BK < a->Tk; // another tile follows
        const float *kt = kh + (size_t)j0 * (size_t)a->ldk;
        // St [nk][nq] (+)= log2(e)/sqrt(HS) * K_tile [nk][HS] * Q^T  (log2-domain scores)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nk, nq, HS, a->scale, kt, a->ldk, q,
                    a->ldq, j0 == 0 ? 0.0f : 1.0f, St, nq);
        if (j0 == 0) {
            at_col_max(m, St, nk, nq);
            at_col_exp2_to(l, P, St, nk, nq, m, refill);
        } else if (!at_col_exp2_pf(tsum, P, St, nk, nq, m, refill)) {
            for (int i = 0; i < nq; i++) l[i] += tsum[i];
        } else {
            // rare: scores jumped far above the running max; recompute the tile and rescale
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nk, nq, HS, a->scale, kt,
                        a->ldk, q, a->ldq, 0.0f, St, nq);
            at_col_max(tmax, St, nk, nq);
            float *alpha = tmax; // reused: rescale factor 2^(m_old - m_new) per query
            for (int i = 0; i < nq; i++) {
                const float mnew = tmax[i] > m[i] ? tmax[i] : m[i];
                alpha[i] = at_exp2f(m[i] - mnew);
                m[i] = mnew;
            }
            at_col_exp2_to(tsum, P, St, nk, nq, m, refill);
            for (int i = 0; i < nq; i++) {
                l[i] = l[i] * alpha[i] + tsum[i];
                if (alpha[i] != 1.0f) {
                    float *o = O + (size_t)i * (size_t)HS;
                    const float al = alpha[i];
#pragma omp simd
                    for (int c = 0; c < HS; c++) o[c] *= al;
                }
            }
        }
        // O [nq][HS] (+)= P [nq][nk] * V_tile [nk][HS], P stored transposed
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nq, HS, nk, 1.0f, P, nq,
                    vh + (size_t)j0 * (size_t)a->ldv, a->ldv, j0 == 0 ? 0.0f : 1.0f, O, HS);
    }
    for (int i = 0; i < nq; i++) {
        const float inv = 1.0f / l[i];
        const float *o = O + (size_t)i * (size_t)HS;
        float *dst = out + (size_t)i * (size_t)a->ldo;
#pragma omp simd
        for (int c = 0; c < HS; c++) dst[c] = o[c] * inv;
    }
}

// Runs the work items. shared != 0: called by every thread of our parallel region, the items are
// shared out dynamically; shared == 0: this caller runs all items (serial, or a call made from
// inside someone else's parallel region, where an orphaned `omp for` would wrongly split the
// items across the caller's team).
static void at_run_items(const at_args *a, int shared) {
    const int bq = a->bq, nqb = (a->Tq + bq - 1) / bq, nitems = a->NH * nqb;
    const int bk = a->Tk < DF_ATT_BK ? a->Tk : DF_ATT_BK;
    at_scratch w;
    const int ntile = (a->Tk + DF_ATT_BK - 1) / DF_ATT_BK;
    const int bqp = (bq + 31) / 32 * 32 + 16; // padded row stride (own-kernel path)
    const int nbuf = AT_OWN_GEMM || ntile > 1 ? 2 : 1;
    w.St = df_malloc((size_t)nbuf * (size_t)bk * (size_t)bqp * sizeof(float));
    w.P = w.St + (size_t)bk * (size_t)bqp;                        // [BK][bqp] when 2 buffers
    w.O = df_malloc((size_t)bqp * (size_t)a->HS * sizeof(float)); // [bq][HS] / [HS][bqp]
    w.Qt = AT_OWN_GEMM ? df_malloc((size_t)bqp * (size_t)a->HS * sizeof(float)) : NULL;
    w.Vp = AT_OWN_GEMM ? df_malloc(2 * (size_t)bk * (size_t)a->HS * sizeof(float)) : NULL;
    w.Kp = AT_OWN_GEMM ? w.Vp + (size_t)bk * (size_t)a->HS : NULL;
    w.m = df_malloc(4 * (size_t)bqp * sizeof(float));             // [4][bqp]
    DF_ASSERT(w.St != NULL && w.O != NULL && w.m != NULL && (!AT_OWN_GEMM || (w.Qt && w.Vp)));
    w.l = w.m + bqp;
    w.t1 = w.l + bqp;
    w.t2 = w.t1 + bqp;
#if defined(__SSE__)
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u); // FTZ | DAZ
#endif
    if (shared) {
#pragma omp for schedule(dynamic, 1)
        for (int it = 0; it < nitems; it++) {
            const int h = it / nqb, i0 = (it % nqb) * bq;
            at_item(a, &w, h, i0, a->Tq - i0 < bq ? a->Tq - i0 : bq);
        }
    } else {
        for (int it = 0; it < nitems; it++) {
            const int h = it / nqb, i0 = (it % nqb) * bq;
            at_item(a, &w, h, i0, a->Tq - i0 < bq ? a->Tq - i0 : bq);
        }
    }
#if defined(__SSE__)
    _mm_setcsr(csr);
#endif
    df_free(w.St);
    df_free(w.O);
    df_free(w.Qt);
    df_free(w.Vp);
    df_free(w.m);
}

void df_attention(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                  const float *v, int ldv, int Tq, int Tk, int NH, int HS) {
    if (Tq <= 0 || NH <= 0 || HS <= 0) return;
    DF_ASSERT(Tk > 0);
    int nt = 1;
#ifdef _OPENMP
    if (!omp_in_parallel()) nt = omp_get_max_threads();
#endif
    // Query block: as large as possible, halved while there are fewer than 3 items per thread.
    int bq = DF_ATT_BQ;
    while (bq > DF_ATT_BQ_MIN && (int64_t)NH * ((Tq + bq - 1) / bq) < 3 * (int64_t)nt) bq /= 2;
    if (bq > Tq) bq = Tq;
    const at_args a = {out, q, k, v, ldo, ldq, ldk, ldv, Tq, Tk, NH, HS, bq,
                       (float)(1.4426950408889634 / sqrt((double)HS))};
    const int nitems = NH * ((Tq + bq - 1) / bq);
    if (nt > nitems) nt = nitems;
    if (nt <= 1) {
        at_run_items(&a, 0);
        return;
    }
    const int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
#pragma omp parallel num_threads(nt)
    at_run_items(&a, 1);
    openblas_set_num_threads(saved);
}

// Plain reference: per head and query, scores in double over all keys.
#if DF_KV_ONCE
void df_attention_ref(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                      const float *v, int ldv, int Tq, int Tk, int NH, int HS) {
    double *p = df_malloc((size_t)(Tk > 0 ? Tk : 1) * sizeof(double));   // [Tk]
    double *acc = df_malloc((size_t)(HS > 0 ? HS : 1) * sizeof(double)); // [HS]
    DF_ASSERT(p != NULL && acc != NULL);
    const double scale = 1.0 / sqrt((double)HS);
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < Tq; i++) {
            const float *qi = q + (size_t)i * (size_t)ldq + (size_t)h * (size_t)HS;
            double mx = -INFINITY;
            for (int j = 0; j < Tk; j++) {
                const float *kj = k + (size_t)j * (size_t)ldk + (size_t)h * (size_t)HS;
                double d = 0.0;
                for (int c = 0; c < HS; c++) d += (double)qi[c] * kj[c];
                p[j] = d * scale;
                if (p[j] > mx) mx = p[j];
            }
            double sum = 0.0;
            for (int j = 0; j < Tk; j++) {
                p[j] = exp(p[j] - mx);
                sum += p[j];
            }
            for (int c = 0; c < HS; c++) acc[c] = 0.0;
            for (int j = 0; j < Tk; j++) {
                const float *vj = v + (size_t)j * (size_t)ldv + (size_t)h * (size_t)HS;
                for (int c = 0; c < HS; c++) acc[c] += p[j] * vj[c];
            }
            float *o = out + (size_t)i * (size_t)ldo + (size_t)h * (size_t)HS;
            for (int c = 0; c < HS; c++) o[c] = (float)(acc[c] / sum);
        }
    df_free(p);
    df_free(acc);
}
#endif
