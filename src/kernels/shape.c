// Shape ops on NHWC tensors: nearest x2 upsample, channel concat, and the sinusoidal timestep
// embedding (diffusers get_timestep_embedding with f32 arithmetic).
#include "kernels/kernels.h"

#include <math.h>
#include <string.h>

// Bytes moved below which the copies stay on one thread.
#define DF_SHAPE_PAR_MIN ((size_t)1 << 20)

// x [B][H][W][C] -> y [B][2H][2W][C], y[b][yy][xx] = x[b][yy/2][xx/2].
void df_upsample2x(float *y, const float *x, int B, int H, int W, int C) {
    const size_t c = (size_t)C, w2 = 2 * (size_t)W;
    const ptrdiff_t rows = (ptrdiff_t)B * H;
    const size_t bytes = (size_t)rows * 4 * (size_t)W * c * sizeof(float);
    (void)bytes;
#pragma omp parallel for schedule(static) if (bytes >= DF_SHAPE_PAR_MIN)
    for (ptrdiff_t r = 0; r < rows; r++) { // r = b*H + yy (source row)
        const float *src = x + (size_t)r * (size_t)W * c;  // [W][C]
        float *d0 = y + (size_t)r * 2 * w2 * c;             // output rows 2yy and 2yy+1: [2][2W][C]
        for (int xx = 0; xx < W; xx++) {
            memcpy(d0 + (2 * (size_t)xx) * c, src + (size_t)xx * c, c * sizeof(float));
            memcpy(d0 + (2 * (size_t)xx + 1) * c, src + (size_t)xx * c, c * sizeof(float));
        }
        memcpy(d0 + w2 * c, d0, w2 * c * sizeof(float));
    }
}

// a [P][Ca], b [P][Cb] -> y [P][Ca+Cb].
void df_concat_channels(float *y, const float *a, const float *b, size_t P, int Ca, int Cb) {
    const size_t ca = (size_t)Ca, cb = (size_t)Cb, cy = ca + cb;
    const size_t bytes = P * cy * sizeof(float);
    (void)bytes;
#pragma omp parallel for schedule(static) if (bytes >= DF_SHAPE_PAR_MIN)
    for (ptrdiff_t p = 0; p < (ptrdiff_t)P; p++) {
        float *yr = y + (size_t)p * cy;
        memcpy(yr, a + (size_t)p * ca, ca * sizeof(float));
        memcpy(yr + ca, b + (size_t)p * cb, cb * sizeof(float));
    }
}

// out [dim]: f_i = exp(-ln(10000) * i / (half - shift)) with every step in f32 (the constant
// -ln(10000) rounded to f32, times f32 i, divided by f32 (half - shift), expf); arg_i = t * f_i;
// [sin(arg), cos(arg)], or [cos, sin] when flip_sin_to_cos; an odd dim gets a trailing 0.
void df_timestep_embedding(float *out, float t, int dim, int flip_sin_to_cos, float shift) {
    const int half = dim / 2;
    const float neg_log_max = (float)-9.210340371976184; // -ln(10000) as f32
    const float denom = (float)half - shift;
    for (int i = 0; i < half; i++) {
        const float expo = neg_log_max * (float)i;
        const float f = expf(expo / denom);
        const float arg = t * f;
        const float s = sinf(arg), co = cosf(arg);
        out[i] = flip_sin_to_cos ? co : s;
        out[half + i] = flip_sin_to_cos ? s : co;
    }
    if (dim % 2) out[dim - 1] = 0.0f;
}
