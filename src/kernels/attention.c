// Scaled dot-product attention (no mask), heads as contiguous channel blocks.
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
#if defined(__AVX512F__) || defined(__SSE__)
#    include <immintrin.h>
#endif
#ifdef _OPENMP
#    include <omp.h>
#endif

#ifndef DF_ATT_BQ
#    define DF_ATT_BQ 512 // queries per work item (at most)
#endif
#ifndef DF_ATT_BQ_MIN
#    define DF_ATT_BQ_MIN 64 // smallest query block when splitting for more parallel items
#endif
#ifndef DF_ATT_BK
#    define DF_ATT_BK 256 // keys per tile
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
    float *O;               // [bq][HS] unnormalized output
    float *m, *l, *t1, *t2; // [bq] running max, running sum, tile max / rescale, tile sum
} at_scratch;

// One work item: head h, queries [i0, i0+nq).
static void at_item(const at_args *a, const at_scratch *w, int h, int i0, int nq) {
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
    w.St = df_malloc((size_t)(ntile > 1 ? 2 : 1) * (size_t)bk * (size_t)bq * sizeof(float));
    w.P = w.St + (size_t)bk * (size_t)bq;                        // [BK][bq] when multi-tile
    w.O = df_malloc((size_t)bq * (size_t)a->HS * sizeof(float)); // [bq][HS]
    w.m = df_malloc(4 * (size_t)bq * sizeof(float));             // [4][bq]
    DF_ASSERT(w.St != NULL && w.O != NULL && w.m != NULL);
    w.l = w.m + bq;
    w.t1 = w.l + bq;
    w.t2 = w.t1 + bq;
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
