// The two resizes the metrics need, each exactly as its reference computes it:
// - clean-fid "clean" mode: Pillow's ImagingResample (separable, horizontal pass first, double
//   weights and accumulation, float32 intermediate) with the bicubic kernel a = -0.5 on each
//   channel as a float ("F") image, then clip to [0, 255];
// - torchvision Resize on uint8 tensors (compute_metrics --is_gt): bilinear with antialias
//   (PIL-style triangle filter, float32), horizontal pass first, round half to even.
#include "distrifuse/metrics.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// Pillow's bicubic filter (a = -0.5), support 2.
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// Coefficients of a Pillow resample pass in -> out: per output index bounds [xmin, xmin + n)
// and normalised weights k[i * ksize + j].
typedef struct coeffs {
    int ksize;
    int *xmin, *n;
    double *k;
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->xmin), free(c->n), free(c->k);
}

static int pil_coeffs(coeffs *c, int in, int out) {
    const double scale = (double)in / out;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = 2.0 * filterscale;
    c->ksize = (int)ceil(support) * 2 + 1;
    c->xmin = malloc(sizeof(int) * (size_t)out);
    c->n = malloc(sizeof(int) * (size_t)out);
    c->k = calloc((size_t)out * c->ksize, sizeof(double));
    if (!c->xmin || !c->n || !c->k) return 0;
    const double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out; xx++) {
        const double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        double *k = c->k + (size_t)xx * c->ksize, ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            const double w = bicubic((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        c->xmin[xx] = xmin;
        c->n[xx] = xmax;
    }
    return 1;
}

void df_cleanfid_resize(float *out, int oh, int ow, const uint8_t *in, int H, int W) {
    float *src = malloc(sizeof(float) * (size_t)H * W);
    float *mid = malloc(sizeof(float) * (size_t)H * ow);
    float *dst = malloc(sizeof(float) * (size_t)oh * ow);
    coeffs ch = {0}, cv = {0};
    DF_ASSERT(src && mid && dst && pil_coeffs(&ch, W, ow) && pil_coeffs(&cv, H, oh));
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < (size_t)H * W; i++) src[i] = (float)in[i * 3 + c];
        // horizontal pass (skipped when the width is unchanged)
        const float *h = src;
        if (ow != W) {
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < ow; xx++) {
                    const double *k = ch.k + (size_t)xx * ch.ksize;
                    const float *s = src + (size_t)y * W + ch.xmin[xx];
                    double acc = 0.0;
                    for (int j = 0; j < ch.n[xx]; j++) acc += s[j] * k[j];
                    mid[(size_t)y * ow + xx] = (float)acc;
                }
            h = mid;
        }
        const float *v = h;
        if (oh != H) {
            for (int yy = 0; yy < oh; yy++) {
                const double *k = cv.k + (size_t)yy * cv.ksize;
                for (int x = 0; x < ow; x++) {
                    double acc = 0.0;
                    for (int j = 0; j < cv.n[yy]; j++)
                        acc += h[(size_t)(cv.xmin[yy] + j) * ow + x] * k[j];
                    dst[(size_t)yy * ow + x] = (float)acc;
                }
            }
            v = dst;
        }
        for (size_t i = 0; i < (size_t)oh * ow; i++) {
            float t = v[i];
            t = t < 0.0f ? 0.0f : t > 255.0f ? 255.0f : t;
            out[i * 3 + c] = t;
        }
    }
    coeffs_free(&ch), coeffs_free(&cv);
    free(src), free(mid), free(dst);
}

// ---------------------------------------------------------------------------------------------
// torch antialiased bilinear (float32 weights): per output index xmin, n, weights w[i*ksize+j].
typedef struct fcoeffs {
    int ksize;
    int *xmin, *n;
    float *w;
} fcoeffs;

static int aa_coeffs(fcoeffs *c, int in, int out) {
    const float scale = (float)in / (float)out;
    const float support = scale >= 1.0f ? scale : 1.0f;
    const float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
    c->ksize = (int)ceilf(support) * 2 + 1;
    c->xmin = malloc(sizeof(int) * (size_t)out);
    c->n = malloc(sizeof(int) * (size_t)out);
    c->w = calloc((size_t)out * c->ksize, sizeof(float));
    if (!c->xmin || !c->n || !c->w) return 0;
    for (int i = 0; i < out; i++) {
        const float center = scale * ((float)i + 0.5f);
        int xmin = (int)(center - support + 0.5f);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5f);
        if (xmax > in) xmax = in;
        int n = xmax - xmin;
        if (n > c->ksize) n = c->ksize;
        float *w = c->w + (size_t)i * c->ksize, total = 0.0f;
        for (int j = 0; j < n; j++) {
            float x = ((float)(j + xmin) - center + 0.5f) * invscale;
            if (x < 0.0f) x = -x;
            const float v = x < 1.0f ? 1.0f - x : 0.0f;
            w[j] = v;
            total += v;
        }
        for (int j = 0; j < n; j++)
            if (total != 0.0f) w[j] /= total;
        c->xmin[i] = xmin;
        c->n[i] = n;
    }
    return 1;
}

static void fcoeffs_free(fcoeffs *c) {
    free(c->xmin), free(c->n), free(c->w);
}

void df_resize_bilinear_aa_u8(uint8_t *out, int oh, int ow, const uint8_t *in, int H, int W) {
    if (oh == H && ow == W) {
        memcpy(out, in, (size_t)H * W * 3);
        return;
    }
    fcoeffs ch = {0}, cv = {0};
    float *mid = malloc(sizeof(float) * (size_t)H * ow * 3);
    DF_ASSERT(mid && aa_coeffs(&ch, W, ow) && aa_coeffs(&cv, H, oh));
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < ow; xx++) {
            const float *w = ch.w + (size_t)xx * ch.ksize;
            for (int c = 0; c < 3; c++) {
                float acc = 0.0f;
                for (int j = 0; j < ch.n[xx]; j++)
                    acc += (float)in[((size_t)y * W + ch.xmin[xx] + j) * 3 + c] * w[j];
                mid[((size_t)y * ow + xx) * 3 + c] = acc;
            }
        }
    for (int yy = 0; yy < oh; yy++) {
        const float *w = cv.w + (size_t)yy * cv.ksize;
        for (int x = 0; x < ow; x++)
            for (int c = 0; c < 3; c++) {
                float acc = 0.0f;
                for (int j = 0; j < cv.n[yy]; j++)
                    acc += mid[((size_t)(cv.xmin[yy] + j) * ow + x) * 3 + c] * w[j];
                float r = rintf(acc); // round half to even (default rounding mode)
                r = r < 0.0f ? 0.0f : r > 255.0f ? 255.0f : r;
                out[((size_t)yy * ow + x) * 3 + c] = (uint8_t)r;
            }
    }
    fcoeffs_free(&ch), fcoeffs_free(&cv);
    free(mid);
}
