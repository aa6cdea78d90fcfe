// Threaded GEMM for the kernels: OpenMP threads, each running single-threaded OpenBLAS on its
// own slice of C (see df_sgemm in kernels.h).
//
// Why not OpenBLAS's own threads: Debian's OpenBLAS is the pthreads build; after every threaded
// call its workers spin (sched_yield) for a while, competing with our OpenMP threads for the
// cores during the serial and OpenMP parts of a layer (measured ~13% of the CPU time of a 2-thread
// SD1.5 step), and a GEMM split inside OpenBLAS cannot overlap with our own work (im2col,
// conversion). Slices: columns of C (multiples of 16, whole cache lines) when the A side is the
// smaller operand to pack twice (M < N), else rows.
#include "kernels/kernels.h"

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

// Below this many multiply-adds a GEMM runs on the calling thread only.
#define DF_GEMM_PAR_MIN_MACS ((double)(1 << 21))

int df_par_threads(void) {
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

int df_blas_single_begin(void) {
    const int saved = openblas_get_num_threads();
    if (saved != 1) openblas_set_num_threads(1);
    return saved;
}

void df_blas_single_end(int saved) {
    if (saved != 1) openblas_set_num_threads(saved);
}

int df_gemm_par_plan(int M, int N, int K, int *split_n, int *nslices) {
    int nt = df_par_threads();
    if ((double)M * N * K < DF_GEMM_PAR_MIN_MACS) nt = 1;
    *split_n = M < N && N >= 32 * nt; // else rows
    if (!*split_n && M < 2 * nt) nt = 1;
    // Up to 4 slices per thread, taken dynamically (the two vCPUs here often run at different
    // speeds for a while), as long as a slice keeps >= 256 columns / >= 512 rows.
    int ns = nt;
    if (nt > 1)
        while (ns < 4 * nt && (*split_n ? N / (2 * ns) >= 256 : M / (2 * ns) >= 512)) ns *= 2;
    *nslices = ns;
    return nt;
}

void df_gemm_slice(int M, int N, int split_n, int t, int n, int *m0, int *m1, int *n0,
                   int *n1) {
    *m0 = 0, *m1 = M, *n0 = 0, *n1 = N;
    if (split_n) {
        const int nb = (N + 15) / 16; // 16-column blocks
        const int b0 = (int)((int64_t)nb * t / n), b1 = (int)((int64_t)nb * (t + 1) / n);
        *n0 = 16 * b0;
        *n1 = 16 * b1 < N ? 16 * b1 : N;
    } else {
        *m0 = (int)((int64_t)M * t / n);
        *m1 = (int)((int64_t)M * (t + 1) / n);
    }
}

void df_sgemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    const enum CBLAS_TRANSPOSE ta = transa ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = transb ? CblasTrans : CblasNoTrans;
    if (M <= 0 || N <= 0) return;
    int split_n, ns;
    const int nt = df_gemm_par_plan(M, N, K, &split_n, &ns);
    if (nt <= 1) {
        cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int saved = df_blas_single_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int t = 0; t < ns; t++) {
        int m0, m1, n0, n1;
        df_gemm_slice(M, N, split_n, t, ns, &m0, &m1, &n0, &n1);
        if (m1 > m0 && n1 > n0) {
            const float *As = transa ? A + m0 : A + (size_t)m0 * lda; // rows of op(A)
            const float *Bs = transb ? B + (size_t)n0 * ldb : B + n0; // columns of op(B)
            cblas_sgemm(CblasRowMajor, ta, tb, m1 - m0, n1 - n0, K, alpha, As, lda, Bs, ldb, beta,
                        C + (size_t)m0 * ldc + n0, ldc);
        }
    }
    df_blas_single_end(saved);
}
