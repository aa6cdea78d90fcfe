// Winograd convolution F(m x m, 3 x 3), m = 2 or 4, for stride-1 pad-1 3x3 convs, NHWC f32,
// with the halo-row convention of df_conv2d (kernels.h).
//
// Output tiles of m x m pixels read (m+2) x (m+2) input patches (a = m + 2). Per call:
//   U[a*a][Cin][Cout] = G g G^T      (the HWIO weights g, transformed on the fly: the f32 cache
//                                    would be a*a/9 = 16/9 (F2) or 4x (F4) of the f32 weights)
//   V[a*a][T][Cin]    = B^T d B      (input tiles, T = tiles of the block)
//   M[p] = V[p] U[p]                 (a*a GEMMs, tiles as M: cblas_sgemm)
//   y = A^T M A + bias               (output tiles, clipped at the right/bottom edge)
// Tiles are taken in blocks so the V/M scratch stays near DF_WINO_BLOCK_BYTES; output channels
// in blocks so the U scratch stays near DF_WINO_U_BYTES (with several tile blocks and several
// channel blocks U is transformed again per tile block). The transforms are loops over
// channel vectors of DF_WINO_CB floats, vectorized by the variant's ISA flags
// (src/kernels/variants.cmake). Threads (OpenMP, OpenBLAS single-threaded): the transforms by
// tiles / input channels, the GEMMs by (tile position, channel block).
//
// Points 0, +-1 (F2) and 0, +-1, +-2 (F4) (Lavin & Gray 2016): F4's transforms have
// coefficients up to 8 (A^T) and 5 (B^T), so its error grows a little with Cin; F2's entries
// are 0, +-1, +-1/2 (error close to the direct conv's). Measured errors: tests and README.
#include "kernels/kernels.h"
#include "kernels/kvariant.h"

#include <cblas.h>
#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

#ifndef DF_WINO_BLOCK_BYTES
#    define DF_WINO_BLOCK_BYTES ((size_t)24 << 20)
#endif
#ifndef DF_WINO_U_BYTES
#    define DF_WINO_U_BYTES ((size_t)64 << 20)
#endif
#define DF_WINO_CB 64 // channels per transform vector

// ---------------------------------------------------------------------------------------------
// Which convs take Winograd (not dispatched: compiled once)

#if DF_KV_ONCE
const char *df_conv_algo_name(int algo) {
    switch (algo) {
    case DF_CONV_ALGO_DIRECT: return "direct";
    case DF_CONV_ALGO_AUTO: return "auto";
    case DF_CONV_ALGO_WINOGRAD: return "winograd";
    case DF_CONV_ALGO_WINO_F2: return "winograd-f2";
    case DF_CONV_ALGO_WINO_F4: return "winograd-f4";
    default: return "?";
    }
}

int df_conv_algo_parse(const char *s, int *out) {
    static const int all[] = {DF_CONV_ALGO_DIRECT, DF_CONV_ALGO_AUTO, DF_CONV_ALGO_WINOGRAD,
                              DF_CONV_ALGO_WINO_F2, DF_CONV_ALGO_WINO_F4};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, df_conv_algo_name(all[i])) == 0) {
            *out = all[i];
            return 1;
        }
    return 0;
}

// Tile size for the conv, 0 = direct. The transformed weights (16 or 36 x Cin x Cout floats,
// made on every call) are used by as many GEMM rows as there are tiles, so the tile count of the
// call decides: F4 where it has at least DF_WINO_MIN_TILES tiles of 4x4, else F2. winograd:
// every stride-1 3x3 conv with at least 8 channels in and out. auto: only where it measured
// faster than the direct conv (Zen 4, 1 thread, B = 2, bench/bench_kernels.c: F4 2.2-2.7x at
// 64x64x320 / 32x32x640 (512 / 128 tiles), F2 1.4x at 16x16x1280 (128 tiles), F2 0.8x / F4 0.5x
// at 8x8x1280 (32 / 8 tiles)): at least DF_WINO_MIN_TILES tiles of 2x2 and 32 channels.
#ifndef DF_WINO_MIN_TILES
#    define DF_WINO_MIN_TILES 128
#endif
int df_winograd_pick(int algo, int B, int H, int W, int cin, int cout, int k, int stride) {
    if (k != 3 || stride != 1 || algo == DF_CONV_ALGO_DIRECT) return 0;
    if (algo == DF_CONV_ALGO_WINO_F2) return 2;
    if (algo == DF_CONV_ALGO_WINO_F4) return 4;
    if (algo != DF_CONV_ALGO_WINOGRAD && algo != DF_CONV_ALGO_AUTO) return 0;
    if (cin < 8 || cout < 8) return 0;
    const double t4 = (double)B * ((H + 3) / 4) * ((W + 3) / 4);
    const double t2 = (double)B * ((H + 1) / 2) * ((W + 1) / 2);
    if (algo == DF_CONV_ALGO_AUTO && (cin < 32 || cout < 32 || t2 < DF_WINO_MIN_TILES)) return 0;
    return t4 >= DF_WINO_MIN_TILES ? 4 : 2;
}
#endif

// ---------------------------------------------------------------------------------------------
// 1-D transforms over channel vectors: o[i*so + c] = sum_k T[i][k] d[k*sd + c], c < n.

// B^T, F(4,3) (6 x 6)
static inline void bt4(float *restrict o, size_t so, const float *restrict d, size_t sd, int n) {
    for (int c = 0; c < n; c++) {
        const float d0 = d[c], d1 = d[sd + c], d2 = d[2 * sd + c], d3 = d[3 * sd + c],
                    d4 = d[4 * sd + c], d5 = d[5 * sd + c];
        o[c] = 4.0f * d0 - 5.0f * d2 + d4;
        o[so + c] = -4.0f * (d1 + d2) + d3 + d4;
        o[2 * so + c] = 4.0f * (d1 - d2) - d3 + d4;
        o[3 * so + c] = 2.0f * (d3 - d1) - d2 + d4;
        o[4 * so + c] = 2.0f * (d1 - d3) - d2 + d4;
        o[5 * so + c] = 4.0f * d1 - 5.0f * d3 + d5;
    }
}

// A^T, F(4,3) (4 x 6)
static inline void at4(float *restrict o, size_t so, const float *restrict d, size_t sd, int n) {
    for (int c = 0; c < n; c++) {
        const float d0 = d[c], d1 = d[sd + c], d2 = d[2 * sd + c], d3 = d[3 * sd + c],
                    d4 = d[4 * sd + c], d5 = d[5 * sd + c];
        const float s12 = d1 + d2, t12 = d1 - d2, s34 = d3 + d4, t34 = d3 - d4;
        o[c] = d0 + s12 + s34;
        o[so + c] = t12 + 2.0f * t34;
        o[2 * so + c] = s12 + 4.0f * s34;
        o[3 * so + c] = t12 + 8.0f * t34 + d5;
    }
}

// G, F(4,3) (6 x 3)
static inline void g4(float *restrict o, size_t so, const float *restrict d, size_t sd, int n) {
    for (int c = 0; c < n; c++) {
        const float g0 = d[c], g1 = d[sd + c], g2 = d[2 * sd + c];
        o[c] = g0 * 0.25f;
        o[so + c] = (g0 + g1 + g2) * (-1.0f / 6.0f);
        o[2 * so + c] = (g0 - g1 + g2) * (-1.0f / 6.0f);
        o[3 * so + c] = g0 * (1.0f / 24.0f) + g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
        o[4 * so + c] = g0 * (1.0f / 24.0f) - g1 * (1.0f / 12.0f) + g2 * (1.0f / 6.0f);
        o[5 * so + c] = g2;
    }
}

// B^T, F(2,3) (4 x 4)
static inline void bt2(float *restrict o, size_t so, const float *restrict d, size_t sd, int n) {
    for (int c = 0; c < n; c++) {
        const float d0 = d[c], d1 = d[sd + c], d2 = d[2 * sd + c], d3 = d[3 * sd + c];
        o[c] = d0 - d2;
        o[so + c] = d1 + d2;
        o[2 * so + c] = d2 - d1;
        o[3 * so + c] = d1 - d3;
    }
}

// A^T, F(2,3) (2 x 4)
static inline void at2(float *restrict o, size_t so, const float *restrict d, size_t sd, int n) {
    for (int c = 0; c < n; c++) {
        const float d0 = d[c], d1 = d[sd + c], d2 = d[2 * sd + c], d3 = d[3 * sd + c];
        o[c] = d0 + d1 + d2;
        o[so + c] = d1 - d2 - d3;
    }
}

// G, F(2,3) (4 x 3)
static inline void g2(float *restrict o, size_t so, const float *restrict d, size_t sd, int n) {
    for (int c = 0; c < n; c++) {
        const float g0 = d[c], g1 = d[sd + c], g2v = d[2 * sd + c];
        o[c] = g0;
        o[so + c] = (g0 + g1 + g2v) * 0.5f;
        o[2 * so + c] = (g0 - g1 + g2v) * 0.5f;
        o[3 * so + c] = g2v;
    }
}

// ---------------------------------------------------------------------------------------------
// Stages

// Input row iy of image n relative to the band (halo rows from top/bot, pad 1); NULL: zeros.
static inline const float *wrow(const float *x, const float *top, const float *bot, int n,
                                int iy, int H, int W, int cin) {
    const size_t row = (size_t)W * cin;
    if (iy < 0) return top && iy == -1 ? top + (size_t)n * row : NULL;
    if (iy >= H) return bot && iy == H ? bot + (size_t)n * row : NULL;
    return x + ((size_t)n * H + (size_t)iy) * row;
}

// U[p][ci][j] = (G g G^T)[p] for output channels [co0, co0 + nb) (j = co - co0), input channels
// [ci0, ci1); w is HWIO [3][3][Cin][Cout].
static void weight_tf(float *U, const float *w, int m, int cin, int cout, int co0, int nb,
                      int ci0, int ci1) {
    const int a = m + 2;
    float t[6 * 3 * DF_WINO_CB]; // [a][3 kx][CB]
    float u[6 * 6 * DF_WINO_CB]; // [a][a][CB]
    for (int ci = ci0; ci < ci1; ci++)
        for (int c0 = 0; c0 < nb; c0 += DF_WINO_CB) {
            const int n = nb - c0 < DF_WINO_CB ? nb - c0 : DF_WINO_CB;
            const float *g = w + (size_t)ci * cout + co0 + c0; // g[(ky*3+kx)*cin*cout]
            const size_t sk = (size_t)cin * cout;
            for (int kx = 0; kx < 3; kx++) { // along ky: t[i][kx] = G g[:, kx]
                if (m == 4) g4(t + kx * DF_WINO_CB, 3 * DF_WINO_CB, g + kx * sk, 3 * sk, n);
                else g2(t + kx * DF_WINO_CB, 3 * DF_WINO_CB, g + kx * sk, 3 * sk, n);
            }
            for (int i = 0; i < a; i++) { // along kx: u[i][j] = t[i] G^T
                if (m == 4) g4(u + i * a * DF_WINO_CB, DF_WINO_CB, t + i * 3 * DF_WINO_CB,
                               DF_WINO_CB, n);
                else g2(u + i * a * DF_WINO_CB, DF_WINO_CB, t + i * 3 * DF_WINO_CB, DF_WINO_CB,
                        n);
            }
            for (int p = 0; p < a * a; p++)
                memcpy(U + ((size_t)p * cin + ci) * nb + c0, u + p * DF_WINO_CB,
                       (size_t)n * sizeof(float));
        }
}

// V[p][t - t0][:] for tiles [t0, t1) (tile t = (n * th + ty) * tw + tx); T = t1 - t0 rows.
static void input_tf(float *V, const float *x, const float *top, const float *bot, int m, int H,
                     int W, int cin, int th, int tw, int t0, int ta, int tb, int T) {
    const int a = m + 2;
    float d[6 * 6 * DF_WINO_CB]; // [a rows][a cols][CB]
    float t[6 * 6 * DF_WINO_CB]; // [a][a][CB] after the row transform
    for (int tt = ta; tt < tb; tt++) {
        const int tile = t0 + tt, n = tile / (th * tw), ty = tile / tw % th, tx = tile % tw;
        const int iy0 = ty * m - 1, ix0 = tx * m - 1;
        const float *rows[6];
        for (int i = 0; i < a; i++) rows[i] = wrow(x, top, bot, n, iy0 + i, H, W, cin);
        for (int c0 = 0; c0 < cin; c0 += DF_WINO_CB) {
            const int nc = cin - c0 < DF_WINO_CB ? cin - c0 : DF_WINO_CB;
            for (int i = 0; i < a; i++)
                for (int j = 0; j < a; j++) {
                    float *dp = d + (i * a + j) * DF_WINO_CB;
                    const int ix = ix0 + j;
                    if (!rows[i] || ix < 0 || ix >= W) memset(dp, 0, (size_t)nc * sizeof(float));
                    else memcpy(dp, rows[i] + (size_t)ix * cin + c0, (size_t)nc * sizeof(float));
                }
            for (int j = 0; j < a; j++) { // along rows: t[i][j] = B^T d[:, j]
                if (m == 4) bt4(t + j * DF_WINO_CB, a * DF_WINO_CB, d + j * DF_WINO_CB,
                                a * DF_WINO_CB, nc);
                else bt2(t + j * DF_WINO_CB, a * DF_WINO_CB, d + j * DF_WINO_CB, a * DF_WINO_CB,
                         nc);
            }
            const size_t sp = (size_t)T * cin; // V stride between positions
            for (int i = 0; i < a; i++) { // along columns, straight into V[i*a + j]
                float *o = V + (size_t)i * a * sp + (size_t)tt * cin + c0;
                if (m == 4) bt4(o, sp, t + i * a * DF_WINO_CB, DF_WINO_CB, nc);
                else bt2(o, sp, t + i * a * DF_WINO_CB, DF_WINO_CB, nc);
            }
        }
    }
}

// y tiles [ta, tb) of the block starting at tile t0 from M[p][tt][cout] (T rows), + bias.
static void output_tf(float *y, const float *Mb, const float *bias, int m, int H, int W,
                      int cout, int th, int tw, int t0, int ta, int tb, int T) {
    const int a = m + 2;
    float t[4 * 6 * DF_WINO_CB]; // [m][a][CB] after the row transform
    float o[4 * 4 * DF_WINO_CB]; // [m][m][CB]
    const size_t sp = (size_t)T * cout;
    for (int tt = ta; tt < tb; tt++) {
        const int tile = t0 + tt, n = tile / (th * tw), ty = tile / tw % th, tx = tile % tw;
        const int oy0 = ty * m, ox0 = tx * m;
        const int mh = H - oy0 < m ? H - oy0 : m, mw = W - ox0 < m ? W - ox0 : m;
        for (int c0 = 0; c0 < cout; c0 += DF_WINO_CB) {
            const int nc = cout - c0 < DF_WINO_CB ? cout - c0 : DF_WINO_CB;
            const float *mp = Mb + (size_t)tt * cout + c0;
            for (int j = 0; j < a; j++) { // along rows: t[r][j] = A^T M[:, j]
                if (m == 4) at4(t + j * DF_WINO_CB, a * DF_WINO_CB, mp + (size_t)j * sp,
                                (size_t)a * sp, nc);
                else at2(t + j * DF_WINO_CB, a * DF_WINO_CB, mp + (size_t)j * sp,
                         (size_t)a * sp, nc);
            }
            for (int r = 0; r < m; r++) { // along columns
                if (m == 4) at4(o + r * m * DF_WINO_CB, DF_WINO_CB, t + r * a * DF_WINO_CB,
                                DF_WINO_CB, nc);
                else at2(o + r * m * DF_WINO_CB, DF_WINO_CB, t + r * a * DF_WINO_CB,
                         DF_WINO_CB, nc);
            }
            for (int r = 0; r < mh; r++)
                for (int s = 0; s < mw; s++) {
                    float *yp = y + (((size_t)n * H + oy0 + r) * W + ox0 + s) * cout + c0;
                    const float *op = o + (r * m + s) * DF_WINO_CB;
                    if (bias)
                        for (int c = 0; c < nc; c++) yp[c] = op[c] + bias[c0 + c];
                    else
                        memcpy(yp, op, (size_t)nc * sizeof(float));
                }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scratch: per-thread cache like conv2d.c's (grows, never shrinks).

static _Thread_local float *g_wscr = NULL;
static _Thread_local size_t g_wscr_floats = 0;

static float *wscratch_get(size_t floats) {
    if (floats > g_wscr_floats) {
        df_free(g_wscr);
        g_wscr = (float *)df_malloc(floats * sizeof(float));
        DF_ASSERT(g_wscr != NULL);
        g_wscr_floats = floats;
    }
    return g_wscr;
}

// Splits [0, n) into nth parts; part t is [*b0, *b1).
static inline void part(int n, int t, int nth, int *b0, int *b1) {
    *b0 = (int)((long long)n * t / nth);
    *b1 = (int)((long long)n * (t + 1) / nth);
}

void df_conv2d_winograd(float *y, const float *x, const float *top, const float *bot,
                        const float *w, const float *bias, int B, int H, int W, int cin, int cout,
                        int m) {
    DF_ASSERT(B > 0 && H > 0 && W > 0 && cin > 0 && cout > 0 && (m == 2 || m == 4));
    const int a = m + 2, P = a * a;
    const int th = (H + m - 1) / m, tw = (W + m - 1) / m;
    const long long Tall = (long long)B * th * tw;
    DF_ASSERT(Tall <= INT32_MAX / 2);
    // Tile block: V [P][Tb][cin] + M [P][Tb][cout] within the budget (at least 16 tiles).
    long long tb = (long long)(DF_WINO_BLOCK_BYTES / ((size_t)P * (cin + cout) * sizeof(float)));
    if (tb < 16) tb = 16;
    if (tb > Tall) tb = Tall;
    const int nblk = (int)((Tall + tb - 1) / tb);
    const int Tb = (int)((Tall + nblk - 1) / nblk); // balanced
    // Output-channel block of U [P][cin][Nb] within its budget (multiple of 16).
    long long nbl = (long long)(DF_WINO_U_BYTES / ((size_t)P * cin * sizeof(float)));
    nbl = nbl / 16 * 16;
    if (nbl < 16) nbl = 16;
    if (nbl > cout) nbl = cout;
    const int ncb = (cout + (int)nbl - 1) / (int)nbl;
    const int Nb = (cout + ncb - 1) / ncb;

    const size_t v_fl = (size_t)P * Tb * cin, m_fl = (size_t)P * Tb * cout;
    const size_t u_fl = (size_t)P * cin * Nb;
    float *scr = wscratch_get(v_fl + m_fl + u_fl);
    float *V = scr, *Mb = scr + v_fl, *U = scr + v_fl + m_fl;

    int nt = df_par_threads();
    if ((double)B * H * W * cout * 2.0 * cin < (double)(1 << 21)) nt = 1;
    const int saved = nt > 1 ? df_blas_single_begin() : 1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = 0, nth = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nth = omp_get_num_threads();
#endif
        for (int blk = 0; blk < nblk; blk++) {
            const int t0 = blk * Tb, T = (int)(Tall - t0 < Tb ? Tall - t0 : Tb);
            int a0, a1;
            part(T, t, nth, &a0, &a1);
            input_tf(V, x, top, bot, m, H, W, cin, th, tw, t0, a0, a1, T);
            for (int cb = 0; cb < ncb; cb++) {
                const int co0 = cb * Nb, nb = cout - co0 < Nb ? cout - co0 : Nb;
                if (blk == 0 || ncb > 1) { // U for this channel block (once when ncb == 1)
                    int c0, c1;
                    part(cin, t, nth, &c0, &c1);
                    weight_tf(U, w, m, cin, cout, co0, nb, c0, c1);
                }
#pragma omp barrier
                // The P GEMMs, by position (and by column halves when positions run short).
                const int split = P % nth != 0 && nb >= 32 ? 2 : 1;
#pragma omp for schedule(dynamic, 1)
                for (int job = 0; job < P * split; job++) {
                    const int p = job / split, h = job % split;
                    const int n0 = h == 0 ? 0 : nb / 2 / 16 * 16, n1 = split == 1 || h ? nb : nb / 2 / 16 * 16;
                    if (n1 <= n0) continue;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, n1 - n0, cin, 1.0f,
                                V + (size_t)p * T * cin, cin, U + (size_t)p * cin * nb + n0, nb,
                                0.0f, Mb + (size_t)p * T * cout + co0 + n0, cout);
                } // implicit barrier
            }
            output_tf(y, Mb, bias, m, H, W, cout, th, tw, t0, a0, a1, T);
#pragma omp barrier
        }
    }
    if (nt > 1) df_blas_single_end(saved);
}
