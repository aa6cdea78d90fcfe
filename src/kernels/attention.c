// Scaled dot-product attention (no mask), heads as contiguous channel blocks.
//
// Fast kernel: flash-style online softmax. Work items are (head, block of DF_ATT_BQ queries);
// for each item the keys are visited in tiles of DF_ATT_BK:
//   S = scale * Q_blk K_tile^T          (cblas_sgemm on strided views, lda = ldq, ldb = ldk)
//   m' = max(m, rowmax S); P = exp(S - m'); l = l * exp(m - m') + rowsum P; O *= exp(m - m')
//   O += P V_tile                       (cblas_sgemm, ldb = ldv)
// and finally out = O / l. Scratch per thread: S [BQ][BK] + O [BQ][HS] + 2 [BQ] floats, never
// O(Tq*Tk). Items run on OpenMP threads with OpenBLAS set to one thread for the duration (the
// pthread OpenBLAS must not fan out from inside an OpenMP region); a single item, or a call made
// from inside a parallel region, runs serially with OpenBLAS threading untouched.
// Each item reads only its own Q rows/head block before writing the same out rows/head block, so
// out may alias q with ldo == ldq.
#include "kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

#define DF_ATT_BQ 256 // queries per work item
#define DF_ATT_BK 512 // keys per tile

// Same vectorizable expf as in elementwise.c: ~2 ulp, 0 below -87.33.
static inline float at_expf(float x) {
    const float hi = 88.0f, lo = -87.3365478515625f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    float n = fmaf(xc, 1.44269504088896341f, 12582912.0f) - 12582912.0f;
    float r = fmaf(n, -0.693359375f, xc);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    float res = p * s;
    return x < lo ? 0.0f : res;
}

typedef struct at_args {
    float *out;
    const float *q, *k, *v;
    int ldo, ldq, ldk, ldv, Tq, Tk, NH, HS;
    float scale;
} at_args;

// One work item: head h, queries [i0, i0+nq). S: [BQ][BK], O: [BQ][HS], m/l: [BQ] scratch.
static void at_item(const at_args *a, int h, int i0, int nq, float *S, float *O, float *m,
                    float *l) {
    const int HS = a->HS;
    const float *q = a->q + (size_t)i0 * (size_t)a->ldq + (size_t)h * (size_t)HS;
    const float *kh = a->k + (size_t)h * (size_t)HS;
    const float *vh = a->v + (size_t)h * (size_t)HS;
    for (int j0 = 0; j0 < a->Tk; j0 += DF_ATT_BK) {
        const int nk = a->Tk - j0 < DF_ATT_BK ? a->Tk - j0 : DF_ATT_BK;
        // S [nq][nk] = scale * Q [nq][HS] * K_tile^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, HS, a->scale, q, a->ldq,
                    kh + (size_t)j0 * (size_t)a->ldk, a->ldk, 0.0f, S, nk);
        for (int r = 0; r < nq; r++) {
            float *s = S + (size_t)r * (size_t)nk;
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (int j = 0; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
            const float mnew = (j0 == 0 || mx > m[r]) ? mx : m[r];
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int j = 0; j < nk; j++) {
                const float e = at_expf(s[j] - mnew);
                s[j] = e;
                sum += e;
            }
            if (j0 == 0) {
                l[r] = sum;
            } else {
                const float alpha = at_expf(m[r] - mnew);
                l[r] = l[r] * alpha + sum;
                if (alpha != 1.0f) {
                    float *o = O + (size_t)r * (size_t)HS;
#pragma omp simd
                    for (int c = 0; c < HS; c++) o[c] *= alpha;
                }
            }
            m[r] = mnew;
        }
        // O [nq][HS] (+)= P [nq][nk] * V_tile [nk][HS]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, HS, nk, 1.0f, S, nk,
                    vh + (size_t)j0 * (size_t)a->ldv, a->ldv, j0 == 0 ? 0.0f : 1.0f, O, HS);
    }
    float *out = a->out + (size_t)i0 * (size_t)a->ldo + (size_t)h * (size_t)HS;
    for (int r = 0; r < nq; r++) {
        const float inv = 1.0f / l[r];
        const float *o = O + (size_t)r * (size_t)HS;
        float *dst = out + (size_t)r * (size_t)a->ldo;
#pragma omp simd
        for (int c = 0; c < HS; c++) dst[c] = o[c] * inv;
    }
}

// Runs all items; called by every thread of a parallel region (the orphaned `omp for` shares the
// items dynamically) or outside any region (serial).
static void at_run_items(const at_args *a, int nitems) {
    const int nqb = (a->Tq + DF_ATT_BQ - 1) / DF_ATT_BQ;
    const int bq = a->Tq < DF_ATT_BQ ? a->Tq : DF_ATT_BQ;
    const int bk = a->Tk < DF_ATT_BK ? a->Tk : DF_ATT_BK;
    float *S = df_malloc((size_t)bq * (size_t)bk * sizeof(float));     // [BQ][BK]
    float *O = df_malloc((size_t)bq * (size_t)a->HS * sizeof(float));  // [BQ][HS]
    float *ml = df_malloc(2 * (size_t)bq * sizeof(float));             // m [BQ], l [BQ]
    DF_ASSERT(S != NULL && O != NULL && ml != NULL);
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < nitems; it++) {
        const int h = it / nqb, qb = it % nqb;
        const int i0 = qb * DF_ATT_BQ;
        const int nq = a->Tq - i0 < DF_ATT_BQ ? a->Tq - i0 : DF_ATT_BQ;
        at_item(a, h, i0, nq, S, O, ml, ml + bq);
    }
    df_free(S);
    df_free(O);
    df_free(ml);
}

void df_attention(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                  const float *v, int ldv, int Tq, int Tk, int NH, int HS) {
    if (Tq <= 0 || NH <= 0 || HS <= 0) return;
    DF_ASSERT(Tk > 0);
    const at_args a = {out, q, k, v, ldo, ldq, ldk, ldv, Tq, Tk, NH, HS,
                       (float)(1.0 / sqrt((double)HS))};
    const int nitems = NH * ((Tq + DF_ATT_BQ - 1) / DF_ATT_BQ);
    int nt = 1;
#ifdef _OPENMP
    if (!omp_in_parallel()) nt = omp_get_max_threads();
    if (nt > nitems) nt = nitems;
#endif
    if (nt <= 1) {
        at_run_items(&a, nitems);
        return;
    }
    const int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
#pragma omp parallel num_threads(nt)
    at_run_items(&a, nitems);
    openblas_set_num_threads(saved);
}

// Plain reference: per head and query, scores in double over all keys.
void df_attention_ref(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                      const float *v, int ldv, int Tq, int Tk, int NH, int HS) {
    double *p = df_malloc((size_t)(Tk > 0 ? Tk : 1) * sizeof(double)); // [Tk]
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
