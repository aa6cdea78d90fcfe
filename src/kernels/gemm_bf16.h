// bf16 GEMM (src/kernels/gemm_bf16.c): C[M][N] (=|+=) A[M][K] * B[K][N] with A f32 (rounded to
// bf16 on the fly, round-to-nearest-even), B bf16 pre-packed, f32 accumulation. The fast kernel
// uses AVX512_BF16 (vdpbf16ps, per-function target attributes: the binary runs anywhere); it is
// used when df_bf16_available(). df_gemm_bf16_ref is its plain-C emulation (same packed B, same
// order of the f32 additions: per k pair, the odd product then the even one), for tests.
//
// Packed B layout (df_bf16_mat): panels of 16 columns; panel j holds for each k pair p the 16
// columns' (B[2p][n], B[2p+1][n]) bf16 pairs: p[(j * kp/2 + p) * 32 + 2 * (n - 16j) + {0,1}];
// kp = K rounded up to even (a zero row pads it), the last panel is zero-padded to 16 columns.
#ifndef DF_KERNELS_GEMM_BF16_H
#define DF_KERNELS_GEMM_BF16_H

#include "core/core.h"

#include <stddef.h>
#include <stdint.h>

typedef struct df_bf16_mat {
    const uint16_t *p; // packed data (64-byte aligned for the fast kernel)
    int K, N, kp;      // kp = K + (K & 1)
} df_bf16_mat;

// 1 if the fast bf16 kernel can run here: the CPU has AVX512_BF16 and the kernel variant in use
// is avx512 (so --cpu avx2/ref and an MPI job agreeing on a lower variant run f32).
int df_bf16_available(void);
// Why df_bf16_available() is 0, one phrase for a log line (NULL when it is 1).
const char *df_bf16_unavailable_reason(void);
// uint16_t elements of a packed K x N matrix.
size_t df_bf16_mat_elems(int K, int N);
// Packs B into dst (df_bf16_mat_elems(K, N) elements): trans = 0: B[k][n] at B[k * ldb + n]
// (the conv HWIO layout, K = 9 * Cin); trans = 1: B[k][n] at B[n * ldb + k] (a Linear weight
// [N][K]). Runs on OpenMP threads when large. Fills *out.
void df_bf16_pack(uint16_t *dst, const float *B, int ldb, int trans, int K, int N,
                  df_bf16_mat *out);
// The same packing straight from a stored weight (F32/F16/BF16, PyTorch layout), without a
// full-size f32 copy (one 16-channel panel at a time through a small per-thread f32 buffer):
// conv = 0: a Linear [out][in] (K = in, N = out, as trans = 1); conv = 1: a 3x3 conv
// [out][in][3][3] (K = 9 * in in HWIO order, N = out, as df_conv_weight_pack + trans = 0).
// Bit-identical to converting to f32 first and packing that.
void df_bf16_pack_weight(uint16_t *dst, const void *src, df_dtype dtype, int conv, int out,
                         int in, df_bf16_mat *out_mat);
// f32 -> bf16 as vcvtneps2bf16 does it: round to nearest even, denormals flush to signed zero,
// NaN stays NaN (core.h's df_f32_to_bf16 keeps denormals). df_bf16_to_f32 (core.h) widens.
uint16_t df_bf16_round(float f);

// One thread: C[m][n] = beta * C[m][n] + sum_k A[m][k] * B[k0 + k][n0 + n] for m < M, n < N,
// k < K; beta is 0 or 1. k0 must be even, n0 a multiple of 16, k0 + K <= B->K, n0 + N <= B->N.
// Runs the fast kernel when df_bf16_available(), else the emulation.
void df_gemm_bf16_serial(int M, int N, int K, const float *A, int lda, const df_bf16_mat *B,
                         int k0, int n0, float beta, float *C, int ldc);
// The same split over df_par_threads() threads as df_sgemm (df_gemm_par_plan / df_gemm_slice).
void df_gemm_bf16(int M, int N, int K, const float *A, int lda, const df_bf16_mat *B, int k0,
                  int n0, float beta, float *C, int ldc);
// Blocking of the fast kernel (k pairs per block, rows per block; <= 0: the defaults); for
// tuning benchmarks, not while kernels run.
void df_bf16_set_blocking(int kc_pairs, int mc);
// Plain-loop emulation of df_gemm_bf16_serial (same results up to the hardware's handling of
// denormals; same argument rules).
void df_gemm_bf16_ref(int M, int N, int K, const float *A, int lda, const df_bf16_mat *B, int k0,
                      int n0, float beta, float *C, int ldc);

// Linear y[M][N] (=|+=) x[M][K] * W^T + bias with W packed by df_bf16_pack(trans = 1) (as
// df_linear).
void df_linear_bf16(float *y, const float *x, const df_bf16_mat *w, const float *bias, int M,
                    int K, int N, int accumulate);
// 3x3 conv as df_conv2d (k = 3, stride 1 or 2) with the HWIO weight packed by
// df_bf16_pack(trans = 0, K = 9 * cin, N = cout); cin must be even (src/kernels/conv2d.c).
void df_conv2d_bf16(float *y, const float *x, const float *top, const float *bot,
                    const df_bf16_mat *w, const float *bias, int B, int H, int W, int cin,
                    int cout, int stride);

#endif // DF_KERNELS_GEMM_BF16_H
