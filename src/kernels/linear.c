// Linear layer: y[M][N] (=|+=) x[M][K] * W^T + b, W in PyTorch layout [N][K].
// Fast path: one cblas_sgemm (NoTrans x Trans); the bias is pre-filled into y (or added to y
// when accumulating) so the GEMM runs with beta = 1. With several threads each runs its own
// slice of y (rows, or 16-column blocks when M < N: df_gemm_slice), bias fill included.
#include "kernels/kernels.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

void df_linear_ref(float *y, const float *x, const float *w, const float *bias, int M, int K,
                   int N, int accumulate) {
    DF_ASSERT(M >= 0 && K >= 0 && N >= 0);
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * K; // [K]
        float *yr = y + (size_t)m * N;       // [N]
        for (int n = 0; n < N; n++) {
            const float *wr = w + (size_t)n * K; // [K]
            double acc = bias ? (double)bias[n] : 0.0;
            for (int kk = 0; kk < K; kk++) acc += (double)xr[kk] * (double)wr[kk];
            yr[n] = accumulate ? (float)((double)yr[n] + acc) : (float)acc;
        }
    }
}

// Rows [m0, m1) x columns [n0, n1) of y: bias prefill (or accumulate), then one GEMM.
static void linear_part(float *y, const float *x, const float *w, const float *bias, int K, int N,
                        int accumulate, int m0, int m1, int n0, int n1) {
    float beta = 1.0f;
    const int nn = n1 - n0;
    if (bias) {
        for (int m = m0; m < m1; m++) {
            float *yr = y + (size_t)m * N + n0; // [nn]
            if (accumulate)
                for (int n = 0; n < nn; n++) yr[n] += bias[n0 + n];
            else
                memcpy(yr, bias + n0, (size_t)nn * sizeof(float));
        }
    } else if (!accumulate) {
        beta = 0.0f;
    }
    if (K == 0) {
        if (beta == 0.0f)
            for (int m = m0; m < m1; m++)
                memset(y + (size_t)m * N + n0, 0, (size_t)nn * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m1 - m0, nn, K, 1.0f,
                x + (size_t)m0 * K, K, w + (size_t)n0 * K, K, beta, y + (size_t)m0 * N + n0, N);
}

void df_linear(float *y, const float *x, const float *w, const float *bias, int M, int K, int N,
               int accumulate) {
    DF_ASSERT(M >= 0 && K >= 0 && N >= 0);
    if (M == 0 || N == 0) return;
    int split_n, ns;
    const int nt = df_gemm_par_plan(M, N, K, &split_n, &ns);
    if (nt <= 1) {
        linear_part(y, x, w, bias, K, N, accumulate, 0, M, 0, N);
        return;
    }
    const int saved = df_blas_single_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int t = 0; t < ns; t++) {
        int m0, m1, n0, n1;
        df_gemm_slice(M, N, split_n, t, ns, &m0, &m1, &n0, &n1);
        if (m1 > m0 && n1 > n0) linear_part(y, x, w, bias, K, N, accumulate, m0, m1, n0, n1);
    }
    df_blas_single_end(saved);
}
