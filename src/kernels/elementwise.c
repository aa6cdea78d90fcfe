// Elementwise kernels: SiLU, exact GELU, quick_gelu, GEGLU, add, row softmax.
//
// The fast versions use a branch-free, vectorizable expf (Cephes-style range reduction plus a
// degree-6 polynomial, relative error ~2 ulp) and an erfc with a fractional error ~1.2e-7
// (Chebyshev fit, Numerical Recipes "erfcc" form), so the loops compile to SIMD code without
// -ffast-math. Large arrays are split over OpenMP threads in fixed chunks (deterministic).
// The _ref twins are plain scalar loops in double precision with libm.
#include "kernels/kernels.h"
#include "kernels/kvariant.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

// Elements per OpenMP work chunk, and the minimum number of chunks worth a parallel region.
#define DF_EW_CHUNK 8192
#define DF_EW_MIN_CHUNKS 8

// ---------------------------------------------------------------------------------------------
// Vectorizable scalar math (inlined into simd loops)

// exp(x) in float: ~2 ulp relative error for x in [-87.33, 88]; clamped to exp(-87.33) ~ 1.2e-38
// below (no subnormals) and to exp(88) above. NaN gives exp(-87.33).
static inline float ew_expf(float x) {
    const float hi = 88.0f, lo = -87.3365478515625f;
    // clamps written as max/min selects (NaN -> lo), which vectorize without mask juggling
    float xc = x > lo ? x : lo;
    xc = xc < hi ? xc : hi;
    float n = fmaf(xc, 1.44269504088896341f, 12582912.0f) - 12582912.0f; // round(x / ln2)
    float r = fmaf(n, -0.693359375f, xc);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p, r * r, r) + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23; // 2^n, n in [-126, 127]
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

static inline float ew_silu(float x) {
    return x / (1.0f + ew_expf(-x));
}

static inline float ew_quick_gelu(float x) {
    return x / (1.0f + ew_expf(-1.702f * x));
}

// Exact-erf GELU via erfc(|x|/sqrt2) (no cancellation for negative x):
//   x >= 0: x - 0.5 x erfc(z);  x < 0: 0.5 x erfc(z),  z = |x|/sqrt(2).
static inline float ew_gelu(float x) {
    float z = fabsf(x) * 0.70710678118654752f;
    float t = 1.0f / fmaf(0.5f, z, 1.0f);
    float p = 0.17087277f;
    p = fmaf(p, t, -0.82215223f);
    p = fmaf(p, t, 1.48851587f);
    p = fmaf(p, t, -1.13520398f);
    p = fmaf(p, t, 0.27886807f);
    p = fmaf(p, t, -0.18628806f);
    p = fmaf(p, t, 0.09678418f);
    p = fmaf(p, t, 0.37409196f);
    p = fmaf(p, t, 1.00002368f);
    p = fmaf(p, t, -1.26551223f);
    float erfc = t * ew_expf(fmaf(-z, z, p));
    float h = 0.5f * x * erfc;
    return x >= 0.0f ? x - h : h;
}

// ---------------------------------------------------------------------------------------------
// Chunked parallel driver for the unary maps. `OP` is an ew_* function.
#define DF_EW_UNARY(OP, y, x, n)                                                               \
    do {                                                                                       \
        const ptrdiff_t nch_ = (ptrdiff_t)(((n) + DF_EW_CHUNK - 1) / DF_EW_CHUNK);             \
        _Pragma("omp parallel for schedule(static) if (nch_ >= DF_EW_MIN_CHUNKS)")             \
        for (ptrdiff_t c_ = 0; c_ < nch_; c_++) {                                              \
            const size_t i0_ = (size_t)c_ * DF_EW_CHUNK;                                       \
            const size_t i1_ = i0_ + DF_EW_CHUNK < (n) ? i0_ + DF_EW_CHUNK : (n);              \
            float *yy_ = (y);                                                                  \
            const float *xx_ = (x);                                                            \
            _Pragma("omp simd")                                                                \
            for (size_t i_ = i0_; i_ < i1_; i_++) yy_[i_] = OP(xx_[i_]);                       \
        }                                                                                      \
    } while (0)

void df_silu(float *y, const float *x, size_t n) {
    DF_EW_UNARY(ew_silu, y, x, n);
}

void df_gelu(float *y, const float *x, size_t n) {
    DF_EW_UNARY(ew_gelu, y, x, n);
}

void df_quick_gelu(float *y, const float *x, size_t n) {
    DF_EW_UNARY(ew_quick_gelu, y, x, n);
}

void df_add(float *y, const float *a, const float *b, size_t n) {
    const ptrdiff_t nch = (ptrdiff_t)((n + DF_EW_CHUNK - 1) / DF_EW_CHUNK);
#pragma omp parallel for schedule(static) if (nch >= DF_EW_MIN_CHUNKS)
    for (ptrdiff_t c = 0; c < nch; c++) {
        const size_t i0 = (size_t)c * DF_EW_CHUNK;
        const size_t i1 = i0 + DF_EW_CHUNK < n ? i0 + DF_EW_CHUNK : n;
#pragma omp simd
        for (size_t i = i0; i < i1; i++) y[i] = a[i] + b[i];
    }
}

// x [T][2N] -> y [T][N]: y = x[:, :N] * gelu(x[:, N:]). y may equal x (in-place compaction):
// row t of y then lies before row t of x and only overlaps rows already consumed, which holds
// for sequential row order only, so that case runs on one thread.
void df_geglu(float *y, const float *x, int T, int N) {
    const size_t work = (size_t)T * (size_t)N;
    const int par = work >= (size_t)DF_EW_CHUNK * DF_EW_MIN_CHUNKS && (const float *)y != x;
    (void)par; // unused without OpenMP
#pragma omp parallel for schedule(static) if (par)
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * 2 * (size_t)N; // [2N]
        float *yr = y + (size_t)t * (size_t)N;           // [N]
#pragma omp simd
        for (int i = 0; i < N; i++) yr[i] = xr[i] * ew_gelu(xr[N + i]);
    }
}

// Row softmax, in place: x [R][N]. max-subtracted, exact up to float rounding.
void df_softmax(float *x, int R, int N) {
    const size_t work = (size_t)R * (size_t)N;
    (void)work;
#pragma omp parallel for schedule(static) if (work >= (size_t)DF_EW_CHUNK * DF_EW_MIN_CHUNKS)
    for (int r = 0; r < R; r++) {
        float *row = x + (size_t)r * (size_t)N;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int i = 0; i < N; i++) mx = row[i] > mx ? row[i] : mx;
        double sum = 0.0; // float partial sums over blocks of 256, added in double
        for (int i0 = 0; i0 < N; i0 += 256) {
            const int i1 = N - i0 < 256 ? N : i0 + 256;
            float part = 0.0f;
#pragma omp simd reduction(+ : part)
            for (int i = i0; i < i1; i++) {
                const float d = row[i] - mx;
                const float e = d > -87.0f ? ew_expf(d) : 0.0f; // exact 0 for -inf masks
                row[i] = e;
                part += e;
            }
            sum += part;
        }
        const float inv = (float)(1.0 / sum);
#pragma omp simd
        for (int i = 0; i < N; i++) row[i] *= inv;
    }
}

// ---------------------------------------------------------------------------------------------
// Reference twins (scalar, double precision, libm)

#if DF_KV_ONCE
void df_silu_ref(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(v / (1.0 + exp(-v)));
    }
}

static double gelu_ref1(double v) {
    return 0.5 * v * erfc(-v * 0.70710678118654752440);
}

void df_gelu_ref(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)gelu_ref1(x[i]);
}

void df_quick_gelu_ref(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(v / (1.0 + exp(-1.702 * v)));
    }
}

void df_geglu_ref(float *y, const float *x, int T, int N) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++) {
            const float *xr = x + (size_t)t * 2 * (size_t)N;
            y[(size_t)t * (size_t)N + (size_t)i] = (float)((double)xr[i] * gelu_ref1(xr[N + i]));
        }
}

void df_softmax_ref(float *x, int R, int N) {
    for (int r = 0; r < R; r++) {
        float *row = x + (size_t)r * (size_t)N;
        double mx = -INFINITY;
        for (int i = 0; i < N; i++)
            if (row[i] > mx) mx = row[i];
        double sum = 0.0;
        for (int i = 0; i < N; i++) sum += exp((double)row[i] - mx);
        for (int i = 0; i < N; i++) row[i] = (float)(exp((double)row[i] - mx) / sum);
    }
}
#endif
