// Operators the metric networks need beyond src/kernels (internal to src/metrics): NHWC
// convolution with any kernel size / stride / padding (im2col + GEMM), max / average pooling,
// weight packing with a folded inference BatchNorm. Every fast op has a plain-loop `_ref` twin
// (tests/metrics/test_metrics_nn.c compares them).
#ifndef DF_METRICS_NN_H
#define DF_METRICS_NN_H

#include "core/core.h"

#include <stddef.h>

// Convolution geometry: kernel kh x kw, stride sh x sw, zero padding ph (top/bottom) x pw.
typedef struct df_mconv {
    int cin, cout, kh, kw, sh, sw, ph, pw;
    float *w;    // packed [kh][kw][cin][cout] (f32, BatchNorm folded in)
    float *bias; // [cout]
} df_mconv;

static inline int df_mconv_out(int in, int k, int s, int p) {
    return in + 2 * p < k ? 0 : (in + 2 * p - k) / s + 1;
}

// Packs a PyTorch conv weight [cout][cin][kh][kw] (f32) into c->w, with an optional per-output
// channel scale (NULL: 1); allocates c->w.
df_status df_mconv_pack(df_mconv *c, const float *w_oihw, const float *scale);
void df_mconv_release(df_mconv *c);

// y[Ho][Wo] rows of ldy floats (the first cout are written; ldy >= cout, for writing into a
// channel slice of a concatenation) = conv(x [H][W][cin]) + bias, then ReLU if relu != 0.
// Parallel over output rows on df_par_threads() threads (GEMM inside), serial inside a parallel
// region. One image.
void df_mconv_forward(const df_mconv *c, float *y, int ldy, const float *x, int H, int W,
                      int relu);
void df_mconv_forward_ref(const df_mconv *c, float *y, int ldy, const float *x, int H, int W,
                          int relu);

// Multiply-adds done by df_mconv_forward since the last reset (all threads; for benchmarks).
double df_mconv_macs(void);
void df_mconv_macs_reset(void);

// Max pool k x k, stride s, padding p (padded cells ignored, floor mode): x [H][W][C] ->
// y [Ho][Wo] rows of ldy floats.
void df_maxpool(float *y, int ldy, const float *x, int H, int W, int C, int k, int s, int p);
void df_maxpool_ref(float *y, int ldy, const float *x, int H, int W, int C, int k, int s, int p);
// Average pool 3x3, stride 1, padding 1, count_include_pad=False: same size.
void df_avgpool3_nopad(float *y, int ldy, const float *x, int H, int W, int C);
void df_avgpool3_nopad_ref(float *y, int ldy, const float *x, int H, int W, int C);

#endif // DF_METRICS_NN_H
