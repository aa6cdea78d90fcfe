// Metric-network operators (see nn.h): im2col + GEMM convolution of any geometry, pooling.
#include "metrics/nn.h"

#include "kernels/kernels.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

df_status df_mconv_pack(df_mconv *c, const float *w, const float *scale) {
    const size_t K = (size_t)c->kh * c->kw * c->cin;
    c->w = df_malloc(K * (size_t)c->cout * sizeof(float));
    DF_FAIL_IF(!c->w, DF_ERR_NOMEM, "conv weight of %zu floats", K * (size_t)c->cout);
    for (int co = 0; co < c->cout; co++) {
        const float s = scale ? scale[co] : 1.0f;
        for (int ci = 0; ci < c->cin; ci++)
            for (int ky = 0; ky < c->kh; ky++)
                for (int kx = 0; kx < c->kw; kx++)
                    c->w[(((size_t)ky * c->kw + kx) * c->cin + ci) * c->cout + co] =
                        w[(((size_t)co * c->cin + ci) * c->kh + ky) * c->kw + kx] * s;
    }
    return DF_OK;
}

void df_mconv_release(df_mconv *c) {
    df_free(c->w);
    df_free(c->bias);
    c->w = c->bias = NULL;
}

// im2col rows of output pixels [p0, p1): col[(p - p0)][ky][kx][ci].
static void im2col(float *col, const df_mconv *c, const float *x, int H, int W, int Wo, int p0,
                   int p1) {
    const int K = c->kh * c->kw * c->cin;
    for (int p = p0; p < p1; p++) {
        const int oy = p / Wo, ox = p % Wo;
        float *row = col + (size_t)(p - p0) * K;
        const int ix0 = ox * c->sw - c->pw;
        // valid kx range: 0 <= ix0 + kx < W
        const int kx0 = ix0 < 0 ? -ix0 : 0;
        const int kx1 = ix0 + c->kw > W ? W - ix0 : c->kw;
        for (int ky = 0; ky < c->kh; ky++) {
            const int iy = oy * c->sh - c->ph + ky;
            float *dst = row + (size_t)ky * c->kw * c->cin;
            if (iy < 0 || iy >= H || kx1 <= kx0) {
                memset(dst, 0, sizeof(float) * (size_t)c->kw * c->cin);
                continue;
            }
            if (kx0 > 0) memset(dst, 0, sizeof(float) * (size_t)kx0 * c->cin);
            memcpy(dst + (size_t)kx0 * c->cin, x + ((size_t)iy * W + ix0 + kx0) * c->cin,
                   sizeof(float) * (size_t)(kx1 - kx0) * c->cin);
            if (kx1 < c->kw)
                memset(dst + (size_t)kx1 * c->cin, 0,
                       sizeof(float) * (size_t)(c->kw - kx1) * c->cin);
        }
    }
}

static void epilogue(float *y, int ldy, int rows, int cout, const float *bias, int relu) {
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * ldy;
        if (bias)
            for (int co = 0; co < cout; co++) yr[co] += bias[co];
        if (relu)
            for (int co = 0; co < cout; co++) yr[co] = yr[co] > 0.0f ? yr[co] : 0.0f;
    }
}

// Rows of one chunk: the GEMM C block [p1 - p0][cout] at y + p0*ldy.
static void conv_chunk(const df_mconv *c, float *y, int ldy, const float *x, int H, int W, int Wo,
                       int p0, int p1, float *col, int relu) {
    const int K = c->kh * c->kw * c->cin;
    const int direct = c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 &&
                       c->pw == 0;
    const float *A;
    if (direct) {
        A = x + (size_t)p0 * c->cin;
    } else {
        im2col(col, c, x, H, W, Wo, p0, p1);
        A = col;
    }
    df_sgemm(0, 0, p1 - p0, c->cout, K, 1.0f, A, K, c->w, c->cout, 0.0f, y + (size_t)p0 * ldy,
             ldy);
    epilogue(y + (size_t)p0 * ldy, ldy, p1 - p0, c->cout, c->bias, relu);
}

static double g_macs;

double df_mconv_macs(void) {
    double v;
#pragma omp atomic read
    v = g_macs;
    return v;
}

void df_mconv_macs_reset(void) {
#pragma omp atomic write
    g_macs = 0;
}

// Bytes of im2col scratch per chunk (bounds memory for the big LPIPS convolutions).
#define DF_MCONV_CHUNK_BYTES ((size_t)16 << 20)

void df_mconv_forward(const df_mconv *c, float *y, int ldy, const float *x, int H, int W,
                      int relu) {
    const int Ho = df_mconv_out(H, c->kh, c->sh, c->ph), Wo = df_mconv_out(W, c->kw, c->sw, c->pw);
    const int P = Ho * Wo;
    if (P <= 0) return;
    const size_t K = (size_t)c->kh * c->kw * c->cin;
    const double macs = (double)P * (double)K * c->cout;
#pragma omp atomic
    g_macs += macs;
    int rows = (int)(DF_MCONV_CHUNK_BYTES / (K * sizeof(float)));
    if (rows < 16) rows = 16;
    const int nt = df_par_threads();
    // Several threads: whole chunks per thread (im2col in parallel) when there are enough rows;
    // otherwise one chunk at a time with the GEMM split over the threads.
    int par = nt > 1 && P >= 256 * nt;
    if (par && rows > (P + 4 * nt - 1) / (4 * nt)) rows = (P + 4 * nt - 1) / (4 * nt);
    if (rows > P) rows = P;
    const int nchunks = (P + rows - 1) / rows;
    const int direct = c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 &&
                       c->pw == 0;
    if (par) {
        const int saved = df_blas_single_begin();
#pragma omp parallel num_threads(nt)
        {
            float *col = direct ? NULL : df_malloc((size_t)rows * K * sizeof(float));
            DF_ASSERT(direct || col);
#pragma omp for schedule(dynamic, 1)
            for (int ch = 0; ch < nchunks; ch++) {
                const int p0 = ch * rows, p1 = p0 + rows < P ? p0 + rows : P;
                conv_chunk(c, y, ldy, x, H, W, Wo, p0, p1, col, relu);
            }
            df_free(col);
        }
        df_blas_single_end(saved);
    } else {
        float *col = direct ? NULL : df_malloc((size_t)rows * K * sizeof(float));
        DF_ASSERT(direct || col);
        for (int ch = 0; ch < nchunks; ch++) {
            const int p0 = ch * rows, p1 = p0 + rows < P ? p0 + rows : P;
            conv_chunk(c, y, ldy, x, H, W, Wo, p0, p1, col, relu);
        }
        df_free(col);
    }
}

void df_mconv_forward_ref(const df_mconv *c, float *y, int ldy, const float *x, int H, int W,
                          int relu) {
    const int Ho = df_mconv_out(H, c->kh, c->sh, c->ph), Wo = df_mconv_out(W, c->kw, c->sw, c->pw);
    for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++)
            for (int co = 0; co < c->cout; co++) {
                double s = c->bias ? c->bias[co] : 0.0;
                for (int ky = 0; ky < c->kh; ky++) {
                    const int iy = oy * c->sh - c->ph + ky;
                    if (iy < 0 || iy >= H) continue;
                    for (int kx = 0; kx < c->kw; kx++) {
                        const int ix = ox * c->sw - c->pw + kx;
                        if (ix < 0 || ix >= W) continue;
                        for (int ci = 0; ci < c->cin; ci++)
                            s += (double)x[((size_t)iy * W + ix) * c->cin + ci] *
                                 c->w[(((size_t)ky * c->kw + kx) * c->cin + ci) * c->cout + co];
                    }
                }
                float v = (float)s;
                if (relu && v < 0.0f) v = 0.0f;
                y[((size_t)oy * Wo + ox) * ldy + co] = v;
            }
}

// ---------------------------------------------------------------------------------------------
// Pooling

void df_maxpool(float *y, int ldy, const float *x, int H, int W, int C, int k, int s, int p) {
    const int Ho = df_mconv_out(H, k, s, p), Wo = df_mconv_out(W, k, s, p);
#pragma omp parallel for schedule(static) if (df_par_threads() > 1 && (size_t)Ho * Wo * C > 65536)
    for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++) {
            float *yo = y + ((size_t)oy * Wo + ox) * ldy;
            for (int c = 0; c < C; c++) yo[c] = -FLT_MAX;
            for (int ky = 0; ky < k; ky++) {
                const int iy = oy * s - p + ky;
                if (iy < 0 || iy >= H) continue;
                for (int kx = 0; kx < k; kx++) {
                    const int ix = ox * s - p + kx;
                    if (ix < 0 || ix >= W) continue;
                    const float *xi = x + ((size_t)iy * W + ix) * C;
                    for (int c = 0; c < C; c++) yo[c] = xi[c] > yo[c] ? xi[c] : yo[c];
                }
            }
        }
}

void df_maxpool_ref(float *y, int ldy, const float *x, int H, int W, int C, int k, int s, int p) {
    const int Ho = df_mconv_out(H, k, s, p), Wo = df_mconv_out(W, k, s, p);
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++) {
                float m = -INFINITY;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        const int iy = oy * s - p + ky, ix = ox * s - p + kx;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        const float v = x[((size_t)iy * W + ix) * C + c];
                        if (v > m) m = v;
                    }
                y[((size_t)oy * Wo + ox) * ldy + c] = m;
            }
}

void df_avgpool3_nopad(float *y, int ldy, const float *x, int H, int W, int C) {
#pragma omp parallel for schedule(static) if (df_par_threads() > 1 && (size_t)H * W * C > 65536)
    for (int oy = 0; oy < H; oy++)
        for (int ox = 0; ox < W; ox++) {
            float *yo = y + ((size_t)oy * W + ox) * ldy;
            for (int c = 0; c < C; c++) yo[c] = 0.0f;
            int cnt = 0;
            for (int iy = oy - 1; iy <= oy + 1; iy++) {
                if (iy < 0 || iy >= H) continue;
                for (int ix = ox - 1; ix <= ox + 1; ix++) {
                    if (ix < 0 || ix >= W) continue;
                    const float *xi = x + ((size_t)iy * W + ix) * C;
                    for (int c = 0; c < C; c++) yo[c] += xi[c];
                    cnt++;
                }
            }
            const float d = (float)cnt;
            for (int c = 0; c < C; c++) yo[c] /= d;
        }
}

void df_avgpool3_nopad_ref(float *y, int ldy, const float *x, int H, int W, int C) {
    for (int c = 0; c < C; c++)
        for (int oy = 0; oy < H; oy++)
            for (int ox = 0; ox < W; ox++) {
                double s = 0;
                int cnt = 0;
                for (int iy = oy - 1; iy <= oy + 1; iy++)
                    for (int ix = ox - 1; ix <= ox + 1; ix++)
                        if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                            s += x[((size_t)iy * W + ix) * C + c];
                            cnt++;
                        }
                y[((size_t)oy * W + ox) * ldy + c] = (float)(s / cnt);
            }
}
