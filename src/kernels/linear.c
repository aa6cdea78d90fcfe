// Linear layer: y[M][N] (=|+=) x[M][K] * W^T + b, W in PyTorch layout [N][K].
// Fast path: one cblas_sgemm (NoTrans x Trans); the bias is pre-filled into y (or added to y
// when accumulating) so the GEMM runs with beta = 1.
#include "kernels/kernels.h"

#include <cblas.h>
#include <string.h>

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

void df_linear(float *y, const float *x, const float *w, const float *bias, int M, int K, int N,
               int accumulate) {
    DF_ASSERT(M >= 0 && K >= 0 && N >= 0);
    if (M == 0 || N == 0) return;
    float beta = 1.0f;
    if (bias) {
        for (int m = 0; m < M; m++) {
            float *yr = y + (size_t)m * N; // [N]
            if (accumulate)
                for (int n = 0; n < N; n++) yr[n] += bias[n];
            else
                memcpy(yr, bias, (size_t)N * sizeof(float));
        }
    } else if (!accumulate) {
        beta = 0.0f;
    }
    if (K == 0) {
        if (beta == 0.0f) memset(y, 0, (size_t)M * N * sizeof(float));
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, w, K, beta, y, N);
}
