// Internal: the LPIPS steps one by one (tests compare every intermediate with the goldens'
// dbg.lpips.* tensors).
#ifndef DF_METRICS_LPIPS_IMPL_H
#define DF_METRICS_LPIPS_IMPL_H

#include "distrifuse/metrics.h"

// Trunk outputs of one image: scaled input [H][W][3] and relu_k maps [h_k][w_k][c_k] (NHWC).
typedef struct df_lpips_trace {
    float *scaled;
    float *relu[5];
    int h[5], w[5], c[5];
} df_lpips_trace;

// x01: [H][W][3] in [0, 1] (u8 / 255). Allocates the trace (df_lpips_trace_free).
df_status df_lpips_trunk(const df_lpips *m, const float *x01, int H, int W, df_lpips_trace *t);
void df_lpips_trace_free(df_lpips_trace *t);
// Layer k (0..4) term from two relu maps of P pixels: mean over pixels of
// sum_c w_c (f0_c - f1_c)^2, f = r / sqrt(1e-8 + sum_c r^2). Optional outputs (NULL to skip):
// feat0/feat1/diff [P][C], lin [P].
float df_lpips_layer(const df_lpips *m, int k, const float *r0, const float *r1, int P,
                     float *feat0, float *feat1, float *diff, float *lin);

#endif // DF_METRICS_LPIPS_IMPL_H
