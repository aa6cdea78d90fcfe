// 2-D convolution, NHWC, with explicit halo rows (see kernels.h).
//
// Fast path (df_conv2d) = implicit GEMM through cblas_sgemm, never a full im2col of the image:
//   k=1:           one GEMM over all B*H*W pixels.
//   k=3 stride 1:  per image, per chunk of output rows: a 3-column im2col of the chunk's input
//                  rows (incl. the halo rows above/below) A3[rows+2][W][3][Cin], then 3 GEMMs
//                  (one per kernel row ky) with M = rows*W, K = 3*Cin, N = Cout, accumulating
//                  straight into y (which was pre-filled with the bias).
//   k=3 stride 2 with >= DF_CONV_SMALL_PIXELS output pixels: per image, per chunk of output rows:
//                  each input row the chunk reads gathered once as [Wo][3][Cin] (stride-2
//                  columns), odd and even rows apart, then 3 GEMMs (one per ky) with K = 3*Cin
//                  as in the stride-1 path (conv_chunk3s2).
//   k=3 stride 2 on smaller images, and stride 1 on images of fewer than DF_CONV_SMALL_PIXELS pixels: per chunk of
//                  output rows counted across the batch (a chunk may span several images): a
//                  9-column im2col A9[rows][Wo][3][3][Cin] (strided gather for stride 2), then
//                  one GEMM with K = 9*Cin.
// Chunks are sized so the im2col scratch stays bounded (DF_CONV_SCRATCH_BYTES) while M stays
// large. The scratch is a per-thread cache that only grows (no page faults on every call).
// Threads (OpenMP, OpenBLAS single-threaded): whole chunks per thread (im2col, bias and GEMMs)
// when a chunk has at least as many output pixels as channels; else chunk by chunk with each
// GEMM split over the threads (df_sgemm: by output channel blocks for small pixel counts).
#include "kernels/kernels.h"
#include "kernels/kvariant.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

// Upper bound of the im2col scratch per call (floats are 4 bytes).
#ifndef DF_CONV_SCRATCH_BYTES
#    define DF_CONV_SCRATCH_BYTES ((size_t)16 << 20)
#endif
// Stride-1 images with fewer pixels than this take the batched 9-tap path (one GEMM over several
// images; measured 0.58 -> 0.72 of the sgemm ceiling at 8x8, 1280 -> 1280 channels, batch 2).
#ifndef DF_CONV_SMALL_PIXELS
#    define DF_CONV_SMALL_PIXELS 256
#endif
// Preferred GEMM M (output pixels per chunk); a chunk is at least one output row.
// (3-tap path; the 9-tap path, whose im2col is 3x larger per pixel, uses DF_CONV9_TARGET_M. Measured
// 1 thread on Zen 4, ratio to sgemm: 128x128x320 stride 1 0.93 -> 0.97 (2048 -> 1024), stride 2
// 0.88 -> 0.91 (2048 -> 256): the chunk's im2col then stays in L2/L3 between gather and GEMM;
// with several threads the 9-tap path keeps 2048, so that threads take whole chunks.)
#ifndef DF_CONV_TARGET_M
#    define DF_CONV_TARGET_M 1024
#endif
#ifndef DF_CONV9_TARGET_M
#    define DF_CONV9_TARGET_M 256
#endif
// Stride 2: the 3-tap path (conv_chunk3s2) on images of >= DF_CONV_SMALL_PIXELS output pixels
// (0: the 9-tap path everywhere), chunks of about DF_CONV_S2_TARGET_M output pixels.
#ifndef DF_CONV_S2_THREE
#    define DF_CONV_S2_THREE 1
#endif
#ifndef DF_CONV_S2_TARGET_M
#    define DF_CONV_S2_TARGET_M 1024
#endif

// ---------------------------------------------------------------------------------------------
// Helpers shared by the reference and the fast kernel

// Input row iy of image n, iy relative to the band (may be in [-pad, 0) for the top halo or
// [H, H+pad) for the bottom halo). Returns NULL where the row is zero padding.
static inline const float *in_row(const float *x, const float *top, const float *bot, int n,
                                  int iy, int H, int W, int cin, int pad) {
    const size_t row = (size_t)W * cin;
    if (iy < 0) {
        if (!top || iy < -pad) return NULL;
        return top + ((size_t)n * pad + (size_t)(pad + iy)) * row;
    }
    if (iy >= H) {
        if (!bot || iy >= H + pad) return NULL;
        return bot + ((size_t)n * pad + (size_t)(iy - H)) * row;
    }
    return x + ((size_t)n * H + (size_t)iy) * row;
}

static inline int out_extent(int n, int stride) {
    return stride == 1 ? n : (n + 1) / 2;
}

static void check_args(int B, int H, int W, int cin, int cout, int k, int stride) {
    DF_ASSERT(B > 0 && H > 0 && W > 0 && cin > 0 && cout > 0);
    DF_ASSERT(k == 1 || k == 3);
    DF_ASSERT(stride == 1 || (stride == 2 && k == 3));
}

// ---------------------------------------------------------------------------------------------
// Reference: plain loops, double accumulation.

#if DF_KV_ONCE
void df_conv2d_ref(float *y, const float *x, const float *top, const float *bot, const float *w,
                   const float *bias, int B, int H, int W, int cin, int cout, int k, int stride) {
    check_args(B, H, W, cin, cout, k, stride);
    const int pad = k / 2;
    const int Ho = out_extent(H, stride), Wo = out_extent(W, stride);
    for (int n = 0; n < B; n++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                float *yp = y + (((size_t)n * Ho + oy) * Wo + ox) * cout; // [Cout]
                for (int co = 0; co < cout; co++) {
                    double acc = bias ? (double)bias[co] : 0.0;
                    for (int ky = 0; ky < k; ky++) {
                        const float *row =
                            in_row(x, top, bot, n, oy * stride + ky - pad, H, W, cin, pad);
                        if (!row) continue;
                        for (int kx = 0; kx < k; kx++) {
                            const int ix = ox * stride + kx - pad;
                            if (ix < 0 || ix >= W) continue;
                            const float *xp = row + (size_t)ix * cin;
                            const float *wp = w + ((size_t)(ky * k + kx) * cin) * cout + co;
                            for (int ci = 0; ci < cin; ci++)
                                acc += (double)xp[ci] * (double)wp[(size_t)ci * cout];
                        }
                    }
                    yp[co] = (float)acc;
                }
            }
}
#endif

// ---------------------------------------------------------------------------------------------
// Fast path

// Per-thread scratch cache (grows, never shrinks; freed at thread exit by the OS).
static _Thread_local float *g_scratch = NULL;
static _Thread_local size_t g_scratch_floats = 0;

static float *scratch_get(size_t floats) {
    if (floats > g_scratch_floats) {
        df_free(g_scratch);
        g_scratch = (float *)df_malloc(floats * sizeof(float));
        DF_ASSERT(g_scratch != NULL); // allocation of a few MB; failure is not user input
        g_scratch_floats = floats;
    }
    return g_scratch;
}

// y[p][:] = bias (or 0) for P pixels.
static void fill_bias(float *y, const float *bias, size_t P, int cout) {
    if (!bias) {
        memset(y, 0, P * (size_t)cout * sizeof(float));
        return;
    }
    for (size_t p = 0; p < P; p++) memcpy(y + p * cout, bias, (size_t)cout * sizeof(float));
}

// Output rows per chunk: aim for DF_CONV_TARGET_M pixels, bounded by the scratch budget
// (bytes_per_row per output row plus fixed_rows extra input rows).
static int chunk_rows(int Ho, int Wo, size_t bytes_per_row, int fixed_rows, int target_m) {
    int rows = (target_m + Wo - 1) / Wo;
    const size_t budget_rows = DF_CONV_SCRATCH_BYTES / bytes_per_row;
    if ((size_t)rows + (size_t)fixed_rows > budget_rows)
        rows = (int)(budget_rows > (size_t)fixed_rows ? budget_rows - (size_t)fixed_rows : 1);
    if (rows < 1) rows = 1;
    if (rows > Ho) rows = Ho;
    // Balance chunk sizes so the last chunk is not a sliver.
    const int nchunks = (Ho + rows - 1) / rows;
    return (Ho + nchunks - 1) / nchunks;
}

// A3[r][x][kx][ci] = input(iy0 + r, x + kx - 1)[ci] for r in [0, nrows), zero outside.
static void gather3(float *A3, const float *x, const float *top, const float *bot, int n,
                    int iy0, int nrows, int H, int W, int cin) {
    const size_t cb = (size_t)cin * sizeof(float);
    for (int r = 0; r < nrows; r++) {
        const float *row = in_row(x, top, bot, n, iy0 + r, H, W, cin, 1);
        float *dst = A3 + (size_t)r * W * 3 * cin; // [W][3][Cin]
        if (!row) {
            memset(dst, 0, (size_t)W * 3 * cb);
            continue;
        }
        for (int ox = 0; ox < W; ox++) {
            float *d = dst + (size_t)ox * 3 * cin;
            if (ox == 0) memset(d, 0, cb);
            else memcpy(d, row + (size_t)(ox - 1) * cin, cb);
            if (ox + 1 < W) {
                memcpy(d + cin, row + (size_t)ox * cin, 2 * cb); // kx = 1, 2 are contiguous
            } else {
                memcpy(d + cin, row + (size_t)ox * cin, cb);
                memset(d + 2 * cin, 0, cb);
            }
        }
    }
}

// One output row oy of image n: A9[ox][ky][kx][ci] = input(s*oy + ky - 1, s*ox + kx - 1)[ci],
// zero outside (s = stride).
static void gather9(float *A9, const float *x, const float *top, const float *bot, int n, int oy,
                    int H, int W, int cin, int s) {
    const int Wo = out_extent(W, s);
    const size_t cb = (size_t)cin * sizeof(float);
    for (int ky = 0; ky < 3; ky++) {
        const float *row = in_row(x, top, bot, n, s * oy + ky - 1, H, W, cin, 1);
        for (int ox = 0; ox < Wo; ox++) {
            float *d = A9 + ((size_t)ox * 9 + (size_t)ky * 3) * cin; // [3][Cin]
            if (!row) {
                memset(d, 0, 3 * cb);
                continue;
            }
            const int ix0 = s * ox - 1;
            if (ix0 >= 0 && ix0 + 2 < W) {
                memcpy(d, row + (size_t)ix0 * cin, 3 * cb);
                continue;
            }
            for (int kx = 0; kx < 3; kx++) {
                const int ix = ix0 + kx;
                if (ix < 0 || ix >= W) memset(d + (size_t)kx * cin, 0, cb);
                else memcpy(d + (size_t)kx * cin, row + (size_t)ix * cin, cb);
            }
        }
    }
}

// One chunk of the stride-1 3-tap path, output rows [r0, r0 + nr) of image n, done by thread t
// of a team of nth (nth = 1: all of it): the im2col rows are shared out, then each thread fills
// the bias and runs the 3 GEMMs on its own block of output channels. A3 is the team's shared
// scratch [rows+2][W][3][Cin]. With nth > 1, called by every thread of the team (barriers).
static void conv_chunk3(float *y, const float *x, const float *top, const float *bot,
                        const float *w, const df_bf16_mat *wb, const float *bias, float *A3, int n, int r0, int nr, int H,
                        int W, int cin, int cout, int t, int nth) {
    const int K = 3 * cin, g0 = (nr + 2) * t / nth, g1 = (nr + 2) * (t + 1) / nth;
    if (g1 > g0) gather3(A3 + (size_t)g0 * W * K, x, top, bot, n, r0 - 1 + g0, g1 - g0, H, W, cin);
    if (nth > 1) {
#pragma omp barrier
    }
    int m0, m1, c0, c1;
    df_gemm_slice(nr * W, cout, 1, t, nth, &m0, &m1, &c0, &c1);
    if (c1 > c0) {
        float *yc = y + ((size_t)n * H + r0) * W * cout; // [nr][W][Cout]
        for (int p = 0; p < nr * W; p++) {
            float *yr = yc + (size_t)p * cout + c0;
            if (bias) memcpy(yr, bias + c0, (size_t)(c1 - c0) * sizeof(float));
            else memset(yr, 0, (size_t)(c1 - c0) * sizeof(float));
        }
        for (int ky = 0; ky < 3; ky++) {
            // Output rows [o0, o1) of the chunk; skip the one whose tap row is zero padding (ky 0
            // at the image top, ky 2 at the image bottom).
            int o0 = 0, o1 = nr;
            if (ky == 0 && !in_row(x, top, bot, n, r0 - 1, H, W, cin, 1)) o0 = 1;
            if (ky == 2 && !in_row(x, top, bot, n, r0 + nr, H, W, cin, 1)) o1 = nr - 1;
            if (o1 <= o0) continue;
            if (wb) { // --compute bf16 (gemm_bf16.h): rows [ky*K, ky*K + K) of the packed weight
                df_gemm_bf16_serial((o1 - o0) * W, c1 - c0, K, A3 + (size_t)(ky + o0) * W * K, K,
                                    wb, ky * K, c0, 1.0f, yc + (size_t)o0 * W * cout + c0, cout);
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (o1 - o0) * W, c1 - c0, K,
                        1.0f, A3 + (size_t)(ky + o0) * W * K, K, w + (size_t)ky * K * cout + c0,
                        cout, 1.0f, yc + (size_t)o0 * W * cout + c0, cout);
        }
    }
    if (nth > 1) {
#pragma omp barrier
    }
}

// Stride 2, one input row iy of image n: G[ox][kx][ci] = input(iy, 2*ox + kx - 1)[ci] (zero
// outside); returns 0 where the row is zero padding (then G is zeros too).
static int gather_s2row(float *G, const float *x, const float *top, const float *bot, int n,
                        int iy, int H, int W, int cin) {
    const int Wo = out_extent(W, 2);
    const size_t cb = (size_t)cin * sizeof(float);
    const float *row = in_row(x, top, bot, n, iy, H, W, cin, 1);
    if (!row) {
        memset(G, 0, (size_t)Wo * 3 * cb);
        return 0;
    }
    for (int ox = 0; ox < Wo; ox++) {
        float *d = G + (size_t)ox * 3 * cin;
        const int ix0 = 2 * ox - 1;
        if (ix0 >= 0 && ix0 + 2 < W) {
            memcpy(d, row + (size_t)ix0 * cin, 3 * cb);
            continue;
        }
        for (int kx = 0; kx < 3; kx++) {
            const int ix = ix0 + kx;
            if (ix < 0 || ix >= W) memset(d + (size_t)kx * cin, 0, cb);
            else memcpy(d + (size_t)kx * cin, row + (size_t)ix * cin, cb);
        }
    }
    return 1;
}

// One chunk of the stride-2 3-tap path, output rows [r0, r0 + nr) of image n, by thread t of
// nth as conv_chunk3: the chunk's input rows are gathered once each, odd ones (2*oy - 1, for
// oy in [r0, r0 + nr]) into O [nr+1][Wo][3][Cin], even ones (2*oy) into E [nr][Wo][3][Cin]
// (A2 = O then E), then 3 GEMMs with K = 3*Cin: ky 0 on O[0, nr), ky 1 on E, ky 2 on O[1, nr].
// 2/3 of the 9-tap im2col, and the GEMM shape of the stride-1 path.
static void conv_chunk3s2(float *y, const float *x, const float *top, const float *bot,
                          const float *w, const df_bf16_mat *wb, const float *bias, float *A2,
                          int n, int r0, int nr, int H, int W, int cin, int cout, int t, int nth) {
    const int Wo = out_extent(W, 2), Ho = out_extent(H, 2), K = 3 * cin;
    const size_t rowf = (size_t)Wo * K;
    float *O = A2, *E = A2 + (size_t)(nr + 1) * rowf;
    for (int g = (2 * nr + 1) * t / nth; g < (2 * nr + 1) * (t + 1) / nth; g++) {
        if (g <= nr) gather_s2row(O + (size_t)g * rowf, x, top, bot, n, 2 * (r0 + g) - 1, H, W, cin);
        else gather_s2row(E + (size_t)(g - nr - 1) * rowf, x, top, bot, n, 2 * (r0 + g - nr - 1),
                          H, W, cin);
    }
    if (nth > 1) {
#pragma omp barrier
    }
    int m0, m1, c0, c1;
    df_gemm_slice(nr * Wo, cout, 1, t, nth, &m0, &m1, &c0, &c1);
    if (c1 > c0) {
        float *yc = y + ((size_t)n * Ho + r0) * Wo * cout; // [nr][Wo][Cout]
        for (int p = 0; p < nr * Wo; p++) {
            float *yr = yc + (size_t)p * cout + c0;
            if (bias) memcpy(yr, bias + c0, (size_t)(c1 - c0) * sizeof(float));
            else memset(yr, 0, (size_t)(c1 - c0) * sizeof(float));
        }
        for (int ky = 0; ky < 3; ky++) {
            int o0 = 0, o1 = nr; // skip the output rows whose tap row is zero padding
            if (ky == 0 && !in_row(x, top, bot, n, 2 * r0 - 1, H, W, cin, 1)) o0 = 1;
            if (ky == 2 && !in_row(x, top, bot, n, 2 * (r0 + nr - 1) + 1, H, W, cin, 1))
                o1 = nr - 1;
            if (o1 <= o0) continue;
            const float *A = ky == 1 ? E + (size_t)o0 * rowf : O + (size_t)(o0 + ky / 2) * rowf;
            if (wb) { // --compute bf16
                df_gemm_bf16_serial((o1 - o0) * Wo, c1 - c0, K, A, K, wb, ky * K, c0, 1.0f,
                                    yc + (size_t)o0 * Wo * cout + c0, cout);
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (o1 - o0) * Wo, c1 - c0, K,
                        1.0f, A, K, w + (size_t)ky * K * cout + c0, cout, 1.0f,
                        yc + (size_t)o0 * Wo * cout + c0, cout);
        }
    }
    if (nth > 1) {
#pragma omp barrier
    }
}

// One chunk of the 9-tap path, global output rows [g0, g0 + nr) (row g = image g / Ho, row
// g % Ho), by thread t of nth as conv_chunk3. A9: shared scratch [rows][Wo][3][3][Cin].
static void conv_chunk9(float *y, const float *x, const float *top, const float *bot,
                        const float *w, const df_bf16_mat *wb, const float *bias, float *A9, int g0, int nr, int H, int W,
                        int cin, int cout, int stride, int t, int nth) {
    const int Ho = out_extent(H, stride), Wo = out_extent(W, stride), K = 9 * cin;
    for (int o = nr * t / nth; o < nr * (t + 1) / nth; o++)
        gather9(A9 + (size_t)o * Wo * K, x, top, bot, (g0 + o) / Ho, (g0 + o) % Ho, H, W, cin,
                stride);
    if (nth > 1) {
#pragma omp barrier
    }
    int m0, m1, c0, c1;
    df_gemm_slice(nr * Wo, cout, 1, t, nth, &m0, &m1, &c0, &c1);
    if (c1 > c0) {
        float *yc = y + (size_t)g0 * Wo * cout; // [nr][Wo][Cout]
        for (int p = 0; p < nr * Wo; p++) {
            float *yr = yc + (size_t)p * cout + c0;
            if (bias) memcpy(yr, bias + c0, (size_t)(c1 - c0) * sizeof(float));
            else memset(yr, 0, (size_t)(c1 - c0) * sizeof(float));
        }
        if (wb) // --compute bf16 (gemm_bf16.h)
            df_gemm_bf16_serial(nr * Wo, c1 - c0, K, A9, K, wb, 0, c0, 1.0f, yc + c0, cout);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr * Wo, c1 - c0, K, 1.0f, A9,
                        K, w + c0, cout, 1.0f, yc + c0, cout);
    }
    if (nth > 1) {
#pragma omp barrier
    }
}

// Chunks of at most `rows` rows over `total` rows (per image for the 3-tap path, `imgs` images)
// for `threads` threads each taking whole chunks: with few chunks, splits further so that every
// thread gets the same number when possible. Returns the rows per chunk; *nch chunks per image.
static int balance_chunks(int total, int rows, int imgs, int threads, int *nch) {
    int c = (total + rows - 1) / rows;
    if (threads > 1 && (imgs * c) % threads != 0 && imgs * c < 4 * threads) {
        int c2 = c;
        while (c2 < total && (imgs * c2) % threads != 0) c2++;
        if ((imgs * c2) % threads == 0) c = c2;
    }
    rows = (total + c - 1) / c;
    *nch = (total + rows - 1) / rows;
    return rows;
}

// df_conv2d, or with wb != NULL (k = 3) df_conv2d_bf16.
static void conv2d_impl(float *y, const float *x, const float *top, const float *bot,
                        const float *w, const df_bf16_mat *wb, const float *bias, int B, int H,
                        int W, int cin, int cout, int k, int stride) {
    check_args(B, H, W, cin, cout, k, stride);
    const int Ho = out_extent(H, stride), Wo = out_extent(W, stride);

    if (k == 1) { // y[P][Cout] = x[P][Cin] * w[Cin][Cout] + bias
        const size_t P = (size_t)B * H * W;
        DF_ASSERT(P <= (size_t)INT32_MAX);
        fill_bias(y, bias, P, cout);
        df_sgemm(0, 0, (int)P, cout, cin, 1.0f, x, cin, w, cout, 1.0f, y, cout);
        return;
    }
    int nt = df_par_threads();
    if ((double)B * Ho * Wo * cout * 9.0 * cin < (double)(1 << 21)) nt = 1; // tiny: serial
    const int three = stride == 1 && (size_t)H * W >= DF_CONV_SMALL_PIXELS;
    // stride 2 on images of at least DF_CONV_SMALL_PIXELS output pixels: conv_chunk3s2
    const int s2 = stride == 2 && DF_CONV_S2_THREE && (size_t)Ho * Wo >= DF_CONV_SMALL_PIXELS;
    const int total = three ? H : s2 ? Ho : B * Ho, imgs = three || s2 ? B : 1;
    const int wo = three ? W : Wo;
    const int K = (three || s2 ? 3 : 9) * cin;
    int nch, rows = chunk_rows(total, wo, (size_t)wo * K * sizeof(float) * (s2 ? 2 : 1),
                               three ? 2 : s2 ? 1 : 0,
                               three ? DF_CONV_TARGET_M : s2 ? DF_CONV_S2_TARGET_M
                               : nt > 1 ? 2048 : DF_CONV9_TARGET_M);
    // Whole chunks per thread when a chunk has at least as many output pixels as channels (the
    // activations are then the larger operand to pack, and each thread packs only its own);
    // otherwise the team works on one chunk at a time, split by output channels.
    const int whole = nt > 1 && (size_t)rows * wo >= (size_t)cout;
    rows = balance_chunks(total, rows, imgs, whole ? nt : 1, &nch);
    const int items = imgs * nch;
    const size_t scr = (size_t)(s2 ? 2 * rows + 1 : rows + (three ? 2 : 0)) * wo * K; // floats
    const int saved = nt > 1 ? df_blas_single_begin() : 1;
    if (whole && items >= nt) {
        // dynamic: the vCPUs here often run at different speeds for a while
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int it = 0; it < items; it++) {
            const int r0 = (it % nch) * rows, nr = rows < total - r0 ? rows : total - r0;
            float *A = scratch_get(scr); // this thread's own
            if (s2)
                conv_chunk3s2(y, x, top, bot, w, wb, bias, A, it / nch, r0, nr, H, W, cin, cout,
                              0, 1);
            else if (three)
                conv_chunk3(y, x, top, bot, w, wb, bias, A, it / nch, r0, nr, H, W, cin, cout, 0, 1);
            else
                conv_chunk9(y, x, top, bot, w, wb, bias, A, r0, nr, H, W, cin, cout, stride, 0, 1);
        }
    } else {
        float *A = scratch_get(scr); // shared by the team
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
            int t = 0, nth = 1;
#ifdef _OPENMP
            t = omp_get_thread_num();
            nth = omp_get_num_threads();
#endif
            for (int it = 0; it < items; it++) {
                const int r0 = (it % nch) * rows, nr = rows < total - r0 ? rows : total - r0;
                if (s2)
                    conv_chunk3s2(y, x, top, bot, w, wb, bias, A, it / nch, r0, nr, H, W, cin,
                                  cout, t, nth);
                else if (three)
                    conv_chunk3(y, x, top, bot, w, wb, bias, A, it / nch, r0, nr, H, W, cin, cout, t,
                                nth);
                else
                    conv_chunk9(y, x, top, bot, w, wb, bias, A, r0, nr, H, W, cin, cout, stride, t,
                                nth);
            }
        }
    }
    if (nt > 1) df_blas_single_end(saved);
}

void df_conv2d(float *y, const float *x, const float *top, const float *bot, const float *w,
               const float *bias, int B, int H, int W, int cin, int cout, int k, int stride) {
    conv2d_impl(y, x, top, bot, w, NULL, bias, B, H, W, cin, cout, k, stride);
}

void df_conv2d_bf16(float *y, const float *x, const float *top, const float *bot,
                    const df_bf16_mat *w, const float *bias, int B, int H, int W, int cin,
                    int cout, int stride) {
    DF_ASSERT(w && (cin & 1) == 0 && w->K == 9 * cin && w->N == cout);
    conv2d_impl(y, x, top, bot, NULL, w, bias, B, H, W, cin, cout, 3, stride);
}

// ---------------------------------------------------------------------------------------------
// Conv-algorithm hook (issue 11 item 3): Winograd (winograd.c) for the stride-1 3x3 convs that
// df_winograd_pick names, the direct kernel above for everything else. Compiled once; it calls
// the dispatched kernels (dispatch.c), hence the #undefs of this file's variant renames.
#if DF_KV_ONCE
#    undef df_conv2d
#    undef df_conv2d_winograd
void df_conv2d_algo(int algo, float *y, const float *x, const float *top, const float *bot,
                    const float *w, const float *bias, int B, int H, int W, int cin, int cout,
                    int k, int stride) {
    const int m = df_winograd_pick(algo, B, H, W, cin, cout, k, stride);
    if (m) df_conv2d_winograd(y, x, top, bot, w, bias, B, H, W, cin, cout, m);
    else df_conv2d(y, x, top, bot, w, bias, B, H, W, cin, cout, k, stride);
}
#endif
