// GroupNorm (two phases: statistics / apply, so bands and ranks can combine sums) and LayerNorm.
//
// Statistics accumulate per channel in double (x^2 of a float is exact in double), split over
// OpenMP threads in fixed token ranges and reduced in thread order (deterministic for a given
// thread count), then summed per group. Apply is one pass: y = (x - mean[c]) * a[c] + beta[c]
// with a[c] = rstd[g] * gamma[c], optional fused SiLU (vectorizable expf). LayerNorm is two-pass
// per token (mean, then centred variance) in double.
#include "kernels/kernels.h"
#include "kernels/kvariant.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

// Elements per thread below which we do not open a parallel region.
#define DF_NORM_PAR_MIN 65536

// Same vectorizable expf as in elementwise.c (see there): ~2 ulp, clamped to [-87.33, 88].
static inline float nm_expf(float x) {
    const float hi = 88.0f, lo = -87.3365478515625f;
    // clamps written as max/min selects (NaN -> lo), which vectorize without mask juggling
    float xc = x > lo ? x : lo;
    xc = xc < hi ? xc : hi;
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
    return p * s;
}

static int nm_threads_for(size_t work) {
#ifdef _OPENMP
    if (omp_in_parallel()) return 1;
    size_t nt = work / DF_NORM_PAR_MIN;
    size_t mx = (size_t)omp_get_max_threads();
    if (nt > mx) nt = mx;
    return nt < 1 ? 1 : (int)nt;
#else
    (void)work;
    return 1;
#endif
}

// ---------------------------------------------------------------------------------------------
// GroupNorm statistics

void df_group_norm_stats(double *stats, const float *x, int T, int C, int G) {
    DF_ASSERT(G > 0 && C % G == 0);
    const int nt = nm_threads_for((size_t)T * (size_t)C);
    double *acc = df_calloc((size_t)nt * 2 * (size_t)C, sizeof(double)); // [nt][2][C]
    DF_ASSERT(acc != NULL);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        const int t0 = (int)((int64_t)T * tid / nt), t1 = (int)((int64_t)T * (tid + 1) / nt);
        double *s = acc + (size_t)tid * 2 * (size_t)C; // [C] sums
        double *q = s + C;                             // [C] sums of squares
        for (int t = t0; t < t1; t++) {
            const float *row = x + (size_t)t * (size_t)C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                const double v = row[c];
                s[c] += v;
                q[c] += v * v;
            }
        }
    }
    const int cg = C / G;
    for (int g = 0; g < G; g++) {
        double s = 0.0, q = 0.0;
        for (int th = 0; th < nt; th++) {
            const double *a = acc + (size_t)th * 2 * (size_t)C;
            for (int c = g * cg; c < (g + 1) * cg; c++) {
                s += a[c];
                q += a[C + c];
            }
        }
        stats[2 * g + 0] = s;
        stats[2 * g + 1] = q;
    }
    df_free(acc);
}

#if DF_KV_ONCE
void df_group_norm_stats_ref(double *stats, const float *x, int T, int C, int G) {
    const int cg = C / G;
    for (int g = 0; g < G; g++) {
        double s = 0.0, q = 0.0;
        for (int t = 0; t < T; t++)
            for (int c = g * cg; c < (g + 1) * cg; c++) {
                const double v = x[(size_t)t * (size_t)C + (size_t)c];
                s += v;
                q += v * v;
            }
        stats[2 * g + 0] = s;
        stats[2 * g + 1] = q;
    }
}

void df_group_norm_finalize(float *mean, float *rstd, const double *stats, int G, double count,
                            float eps) {
    for (int g = 0; g < G; g++) {
        const double m = stats[2 * g] / count;
        double var = stats[2 * g + 1] / count - m * m;
        if (var < 0.0) var = 0.0;
        mean[g] = (float)m;
        rstd[g] = (float)(1.0 / sqrt(var + (double)eps));
    }
}
#endif

// ---------------------------------------------------------------------------------------------
// GroupNorm apply

void df_group_norm_apply(float *y, const float *x, const float *mean, const float *rstd,
                         const float *gamma, const float *beta, int T, int C, int G, int silu) {
    DF_ASSERT(G > 0 && C % G == 0);
    const int cg = C / G;
    float *pc = df_malloc(3 * (size_t)C * sizeof(float)); // [3][C]: mean, scale, shift per channel
    DF_ASSERT(pc != NULL);
    float *mc = pc, *ac = pc + C, *bc = pc + 2 * (size_t)C;
    for (int c = 0; c < C; c++) {
        const int g = c / cg;
        mc[c] = mean[g];
        ac[c] = rstd[g] * (gamma ? gamma[c] : 1.0f);
        bc[c] = beta ? beta[c] : 0.0f;
    }
    const int nt = nm_threads_for((size_t)T * (size_t)C);
    (void)nt;
    if (silu) {
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int t = 0; t < T; t++) {
            const float *xr = x + (size_t)t * (size_t)C;
            float *yr = y + (size_t)t * (size_t)C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                const float v = fmaf(xr[c] - mc[c], ac[c], bc[c]);
                yr[c] = v / (1.0f + nm_expf(-v));
            }
        }
    } else {
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
        for (int t = 0; t < T; t++) {
            const float *xr = x + (size_t)t * (size_t)C;
            float *yr = y + (size_t)t * (size_t)C;
#pragma omp simd
            for (int c = 0; c < C; c++) yr[c] = fmaf(xr[c] - mc[c], ac[c], bc[c]);
        }
    }
    df_free(pc);
}

#if DF_KV_ONCE
void df_group_norm_apply_ref(float *y, const float *x, const float *mean, const float *rstd,
                             const float *gamma, const float *beta, int T, int C, int G,
                             int silu) {
    const int cg = C / G;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            const size_t i = (size_t)t * (size_t)C + (size_t)c;
            const int g = c / cg;
            double v = ((double)x[i] - mean[g]) * rstd[g];
            v = v * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
            if (silu) v = v / (1.0 + exp(-v));
            y[i] = (float)v;
        }
}
#endif

void df_group_norm(float *y, const float *x, const float *gamma, const float *beta, int B, int T,
                   int C, int G, float eps, int silu) {
    DF_ASSERT(G > 0 && G <= 4096 && C % G == 0);
    double *stats = df_malloc(2 * (size_t)G * sizeof(double)); // [G][2]
    float *mr = df_malloc(2 * (size_t)G * sizeof(float));      // mean [G], rstd [G]
    DF_ASSERT(stats != NULL && mr != NULL);
    const size_t img = (size_t)T * (size_t)C;
    for (int b = 0; b < B; b++) {
        df_group_norm_stats(stats, x + (size_t)b * img, T, C, G);
        df_group_norm_finalize(mr, mr + G, stats, G, (double)T * (double)(C / G), eps);
        df_group_norm_apply(y + (size_t)b * img, x + (size_t)b * img, mr, mr + G, gamma, beta, T,
                            C, G, silu);
    }
    df_free(stats);
    df_free(mr);
}

// ---------------------------------------------------------------------------------------------
// LayerNorm

void df_layer_norm(float *y, const float *x, const float *gamma, const float *beta, int T, int C,
                   float eps) {
    const int nt = nm_threads_for((size_t)T * (size_t)C);
    (void)nt;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * (size_t)C;
        float *yr = y + (size_t)t * (size_t)C;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += (double)xr[c];
        const double md = s / C;
        double q = 0.0;
#pragma omp simd reduction(+ : q)
        for (int c = 0; c < C; c++) {
            const double d = (double)xr[c] - md;
            q += d * d;
        }
        const double rd = 1.0 / sqrt(q / C + (double)eps);
        // normalize in double (no cancellation from a rounded mean), affine in float
        if (gamma && beta) {
#pragma omp simd
            for (int c = 0; c < C; c++)
                yr[c] = fmaf((float)(((double)xr[c] - md) * rd), gamma[c], beta[c]);
        } else {
            for (int c = 0; c < C; c++) {
                float v = (float)(((double)xr[c] - md) * rd);
                if (gamma) v *= gamma[c];
                if (beta) v += beta[c];
                yr[c] = v;
            }
        }
    }
}

#if DF_KV_ONCE
void df_layer_norm_ref(float *y, const float *x, const float *gamma, const float *beta, int T,
                       int C, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * (size_t)C;
        float *yr = y + (size_t)t * (size_t)C;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += xr[c];
        const double m = s / C;
        double q = 0.0;
        for (int c = 0; c < C; c++) q += ((double)xr[c] - m) * ((double)xr[c] - m);
        const double r = 1.0 / sqrt(q / C + (double)eps);
        for (int c = 0; c < C; c++) {
            double v = ((double)xr[c] - m) * r;
            if (gamma) v *= gamma[c];
            if (beta) v += beta[c];
            yr[c] = (float)v;
        }
    }
}
#endif
