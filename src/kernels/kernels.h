// distrifuse kernels: the operator set every model (UNet, VAE, CLIP) is written in.
//
// Layout legend (activations are f32, channels-last):
//   images  NHWC: x[n][y][x][c], a row band [h0,h1) of one image is one contiguous slice.
//   tokens  [T, C] row-major: the same memory as an NHWC image with T = H*W.
//   B batch, H/W height/width (of the band for band kernels), C channels, G groups,
//   T tokens, NH heads, HS head size.
// Weights arrive in PyTorch layout (Linear [out][in], Conv2d [Cout][Cin][kh][kw]) and any stored
// dtype; df_weight_* convert them into f32 scratch in the layout the fast kernel wants.
//
// Every fast kernel `df_X` has a plain-loop twin `df_X_ref` with the same signature; tests in
// tests/test_kernels*.c compare them on random inputs incl. odd sizes. GEMMs go through
// cblas_sgemm; threading is OpenMP (thread count set by df_set_threads()); GEMM kernels run
// single-threaded OpenBLAS inside their own parallel regions (see the threading helpers).
// Kernels do not fail on user input: shapes are validated by the caller (model loading); broken
// invariants are DF_ASSERTs.
// Variants: the vector kernels (attention, softmax/activations, norms, conversion and conv
// packing, conv im2col) exist as portable / AVX2+FMA+F16C / AVX-512 builds in one binary; each
// df_X below dispatches to the one core/cpu.h selected (src/kernels/kvariant.h, dispatch.c).
// The `_ref` twins are single plain-loop versions.
#ifndef DF_KERNELS_H
#define DF_KERNELS_H

#include "core/core.h"
#include "distrifuse/pipeline.h" // df_conv_algo

#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------------------------------------
// Threading helpers (src/kernels/gemm.c)
//
// The GEMM kernels (df_sgemm, df_linear, df_conv2d) split their work over OpenMP threads, each
// running single-threaded OpenBLAS on its own part; OpenBLAS's thread count is set to 1 for the
// duration and restored. Its own pthread workers would otherwise spin between calls, competing
// with the OpenMP threads.

// Threads a kernel may use here: the OpenMP thread count, 1 inside a parallel region.
int df_par_threads(void);
// Sets OpenBLAS to one thread; returns the previous count for df_blas_single_end.
int df_blas_single_begin(void);
void df_blas_single_end(int saved);
// Row-major C = alpha op(A) op(B) + beta C (cblas_sgemm semantics, trans* != 0: transposed),
// split over df_par_threads() threads by columns of C (blocks of 16) when M < N, else by rows.
void df_sgemm(int transa, int transb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
// The split df_sgemm uses: threads for an M x N x K product (1: serial), *split_n (columns,
// else rows) and *nslices (slices taken dynamically by the threads, a few per thread when
// large); df_gemm_slice gives slice t of n its rows [m0, m1) and columns [n0, n1).
int df_gemm_par_plan(int M, int N, int K, int *split_n, int *nslices);
void df_gemm_slice(int M, int N, int split_n, int t, int n, int *m0, int *m1, int *n0, int *n1);

// ---------------------------------------------------------------------------------------------
// Weight conversion (stored dtype -> f32 scratch)

// dst[i] = (float)src[i] for F32/F16/BF16 src; n elements. src may be unaligned; dst must not
// overlap src. Other dtypes are a DF_ASSERT failure.
void df_convert_to_f32(float *dst, const void *src, df_dtype dtype, size_t n);
// Conv weight [Cout][Cin][k][k] (PyTorch, any float dtype) -> packed f32 layout used by df_conv2d:
// dst[((ky*k + kx)*Cin + ci)*Cout + co]   ("HWIO"). dst holds k*k*Cin*Cout floats.
// For k = 1 this is the transpose [Cin][Cout]. Runs on OpenMP threads when large (not inside a
// parallel region); no temporary.
void df_conv_weight_pack(float *dst, const void *src, df_dtype dtype, int cout, int cin, int k);
// The same for output channels [co0, co1) only (dst is the whole [k][k][Cin][Cout] array; those
// columns are written): threads may pack disjoint ranges concurrently. Serial.
void df_conv_weight_pack_range(float *dst, const void *src, df_dtype dtype, int cout, int cin,
                               int k, int co0, int co1);
// Plain-loop twins of the two above.
void df_convert_to_f32_ref(float *dst, const void *src, df_dtype dtype, size_t n);
void df_conv_weight_pack_ref(float *dst, const void *src, df_dtype dtype, int cout, int cin,
                             int k);

// ---------------------------------------------------------------------------------------------
// Convolution (NHWC, zero padding pad = k/2 left/right; explicit halo rows above/below)
//
// x:    [B][H][W][Cin], the band (H rows). For stride 1 the output has H rows; for stride 2
//       (k=3, pad 1) the output has ceil(H/2) rows (H even when a band, any H for a whole image).
// top:  [B][pad][W][Cin] rows directly above the band, or NULL for zero padding (image top).
// bot:  [B][pad][W][Cin] rows directly below the band, or NULL for zero padding (image bottom).
//       For stride 2 with even H, bot is never read (pass NULL).
// w:    packed weights from df_conv_weight_pack ([k][k][Cin][Cout]); bias: [Cout] or NULL.
// y:    [B][Ho][Wo][Cout]; Wo = W for stride 1, ceil(W/2) for stride 2.
// k is 1 or 3; stride 1 or 2 (stride 2 only with k 3). For k = 1 top/bot are ignored.
// Output row oy reads input rows oy*stride - pad .. oy*stride + pad (relative to the band), so a
// band's result equals the matching rows of the whole-image conv when top/bot hold the
// neighbouring rows (stride 2: bands start at even rows).
// y must not overlap x/top/bot. The fast kernel keeps a per-thread im2col scratch of about
// 16 MiB (more only if 3 rows of [W][3][Cin] floats exceed that; grown on demand, reused): the
// calling thread's, and with several threads each OpenMP thread's when the threads take whole
// row chunks. It may be called from several threads at once (then it runs serially in each).
void df_conv2d(float *y, const float *x, const float *top, const float *bot, const float *w,
               const float *bias, int B, int H, int W, int cin, int cout, int k, int stride);
void df_conv2d_ref(float *y, const float *x, const float *top, const float *bot, const float *w,
                   const float *bias, int B, int H, int W, int cin, int cout, int k, int stride);

// Winograd F(m x m, 3 x 3) for stride-1 3x3 convs (src/kernels/winograd.c), m = 2 or 4: the
// same contract as df_conv2d with k = 3, stride 1 (same w, halos, bias; results differ from the
// direct conv by rounding: see the tests and README for the measured error). The weights are
// transformed on every call; scratch per calling thread: V/M tile buffers of about 24 MiB plus
// the transformed weights of a block of output channels (about 64 MiB at most).
void df_conv2d_winograd(float *y, const float *x, const float *top, const float *bot,
                        const float *w, const float *bias, int B, int H, int W, int cin, int cout,
                        int m);
// Tile size m (2, 4) the algorithm picks for the conv, 0 = direct (df_conv_algo values, see
// distrifuse/pipeline.h: DIRECT never, WINOGRAD every stride-1 3x3 conv with >= 8 channels in
// and out, AUTO where it measured faster, WINO_F2 / WINO_F4 force the tile on stride-1 3x3).
int df_winograd_pick(int algo, int B, int H, int W, int cin, int cout, int k, int stride);
// df_conv2d, or df_conv2d_winograd where df_winograd_pick(algo, ...) says so (conv2d.c).
void df_conv2d_algo(int algo, float *y, const float *x, const float *top, const float *bot,
                    const float *w, const float *bias, int B, int H, int W, int cin, int cout,
                    int k, int stride);

// ---------------------------------------------------------------------------------------------
// Linear: y[M][N] = x[M][K] * W^T + b, W is PyTorch [N][K] f32, bias [N] or NULL.
// If accumulate != 0, y += result (for residual fusion). y must not overlap x or W.
// M, K or N may be 0 (K = 0: y = bias or 0, resp. y += bias).
void df_linear(float *y, const float *x, const float *w, const float *bias, int M, int K, int N,
               int accumulate);
void df_linear_ref(float *y, const float *x, const float *w, const float *bias, int M, int K,
                   int N, int accumulate);

// ---------------------------------------------------------------------------------------------
// GroupNorm in two phases, so statistics can be combined across ranks.
//
// Statistics of one image: for group g (channels [g*C/G, (g+1)*C/G)) over the T = H*W tokens:
//   stats[2*g+0] = sum(x), stats[2*g+1] = sum(x^2), both in double.
// Sums from disjoint bands add up; the element count per group is T*C/G.
void df_group_norm_stats(double *stats, const float *x, int T, int C, int G);
void df_group_norm_stats_ref(double *stats, const float *x, int T, int C, int G);
// y = (x - mean[g]) * rstd[g] * gamma[c] + beta[c]; then SiLU if silu != 0. y may alias x.
// mean/rstd: [G] (rstd = 1/sqrt(var + eps), computed by the caller from the statistics).
void df_group_norm_apply(float *y, const float *x, const float *mean, const float *rstd,
                         const float *gamma, const float *beta, int T, int C, int G, int silu);
void df_group_norm_apply_ref(float *y, const float *x, const float *mean, const float *rstd,
                             const float *gamma, const float *beta, int T, int C, int G, int silu);
// Convenience: full GroupNorm of B images [B][T][C] (biased variance, eps inside sqrt).
void df_group_norm(float *y, const float *x, const float *gamma, const float *beta, int B, int T,
                   int C, int G, float eps, int silu);
// mean/rstd from stats (count = elements per group); variance = E[x^2]-E[x]^2 clamped at 0.
void df_group_norm_finalize(float *mean, float *rstd, const double *stats, int G, double count,
                            float eps);

// LayerNorm over the last dimension: x [T][C] -> y; gamma/beta [C] (NULL = no affine). y may alias x.
void df_layer_norm(float *y, const float *x, const float *gamma, const float *beta, int T, int C,
                   float eps);
void df_layer_norm_ref(float *y, const float *x, const float *gamma, const float *beta, int T,
                       int C, float eps);

// ---------------------------------------------------------------------------------------------
// Elementwise (in place allowed: y may equal x)
void df_silu(float *y, const float *x, size_t n);
void df_gelu(float *y, const float *x, size_t n);       // exact erf GELU
void df_quick_gelu(float *y, const float *x, size_t n); // x * sigmoid(1.702 x)
// GEGLU: x [T][2N] -> y [T][N]: y = x[:, :N] * gelu(x[:, N:]) (diffusers GEGLU chunk order).
void df_geglu(float *y, const float *x, int T, int N);
void df_add(float *y, const float *a, const float *b, size_t n); // y = a + b
// In-place softmax over rows: x [R][N].
void df_softmax(float *x, int R, int N);
// Reference twins (plain loops) for the elementwise family.
void df_silu_ref(float *y, const float *x, size_t n);
void df_gelu_ref(float *y, const float *x, size_t n);
void df_quick_gelu_ref(float *y, const float *x, size_t n);
void df_geglu_ref(float *y, const float *x, int T, int N);
void df_softmax_ref(float *x, int R, int N);

// ---------------------------------------------------------------------------------------------
// Attention: out[Tq][NH*HS] = softmax(Q K^T / sqrt(HS)) V per head, heads in contiguous channel
// blocks. q: [Tq] rows of stride ldq (>= NH*HS), k/v: [Tk] rows with strides ldk/ldv (K/V may
// have more tokens than Q: a band's queries against the whole image). No mask.
// The fast kernel uses online softmax in tiles (memory O(tile), not O(Tq*Tk)); scratch is
// internal and bounded.
void df_attention(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                  const float *v, int ldv, int Tq, int Tk, int NH, int HS);
void df_attention_ref(float *out, int ldo, const float *q, int ldq, const float *k, int ldk,
                      const float *v, int ldv, int Tq, int Tk, int NH, int HS);

// ---------------------------------------------------------------------------------------------
// Shape ops (NHWC)
// Nearest x2 upsample: x [B][H][W][C] -> y [B][2H][2W][C].
void df_upsample2x(float *y, const float *x, int B, int H, int W, int C);
// Channel concat: a [P][Ca], b [P][Cb] -> y [P][Ca+Cb] (P = pixels, batch included).
void df_concat_channels(float *y, const float *a, const float *b, size_t P, int Ca, int Cb);
// Sinusoidal timestep embedding (diffusers get_timestep_embedding, f32 arithmetic):
// out [dim]; exponent = -ln(10000) * i / (half - shift); flip_sin_to_cos puts cos first.
void df_timestep_embedding(float *out, float t, int dim, int flip_sin_to_cos, float shift);

#endif // DF_KERNELS_H
