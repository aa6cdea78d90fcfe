// LPIPS with AlexNet (torchmetrics LearnedPerceptualImagePatchSimilarity(net_type='alex',
// normalize=True)): scaling layer, the five ReLU outputs of torchvision's AlexNet features, unit
// normalisation over channels, squared difference, the linear heads, spatial mean, sum.
#include "distrifuse/metrics.h"

#include "metrics/lpips_impl.h"
#include "metrics/nn.h"
#include "metrics/weights_util.h"

#include "io/safetensors.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// torchvision AlexNet features index, conv geometry
static const struct {
    int idx, cout, cin, k, s, p;
} g_alex[5] = {
    {0, 64, 3, 11, 4, 2}, {3, 192, 64, 5, 1, 2}, {6, 384, 192, 3, 1, 1},
    {8, 256, 384, 3, 1, 1}, {10, 256, 256, 3, 1, 1},
};

struct df_lpips {
    df_mconv conv[5];
    float *lin[5]; // [C_k]
};

void df_lpips_free(df_lpips *m) {
    if (!m) return;
    for (int k = 0; k < 5; k++) {
        df_mconv_release(&m->conv[k]);
        df_free(m->lin[k]);
    }
    free(m);
}

df_status df_lpips_load(const char *path, df_lpips **out) {
    *out = NULL;
    df_lpips *m = calloc(1, sizeof *m);
    DF_FAIL_IF(!m, DF_ERR_NOMEM, "lpips model");
    df_st_file *f = NULL;
    df_status st = df_st_open(path, &f);
    for (int k = 0; k < 5 && st == DF_OK; k++) {
        char nm[96], alt[96];
        const int i = g_alex[k].idx, co = g_alex[k].cout, ci = g_alex[k].cin, ks = g_alex[k].k;
        df_mconv *c = &m->conv[k];
        c->cin = ci, c->cout = co, c->kh = c->kw = ks, c->sh = c->sw = g_alex[k].s;
        c->ph = c->pw = g_alex[k].p;
        const int64_t wd[4] = {co, ci, ks, ks}, bd[1] = {co}, ld[4] = {1, co, 1, 1};
        float *w = NULL;
        // torchmetrics names; the lpips package's drop the leading "net."
        snprintf(nm, sizeof nm, "net.net.slice%d.%d.weight", k + 1, i);
        snprintf(alt, sizeof alt, "net.slice%d.%d.weight", k + 1, i);
        st = df_metrics_read_tensor(f, nm, alt, 4, wd, &w);
        if (st == DF_OK) st = df_mconv_pack(c, w, NULL);
        df_free(w);
        if (st != DF_OK) break;
        snprintf(nm, sizeof nm, "net.net.slice%d.%d.bias", k + 1, i);
        snprintf(alt, sizeof alt, "net.slice%d.%d.bias", k + 1, i);
        st = df_metrics_read_tensor(f, nm, alt, 1, bd, &c->bias);
        if (st != DF_OK) break;
        snprintf(nm, sizeof nm, "net.lin%d.model.1.weight", k);
        snprintf(alt, sizeof alt, "lin%d.model.1.weight", k);
        st = df_metrics_read_tensor(f, nm, alt, 4, ld, &m->lin[k]);
    }
    df_st_close(f);
    if (st != DF_OK) {
        df_lpips_free(m);
        return st;
    }
    *out = m;
    return DF_OK;
}

void df_lpips_trace_free(df_lpips_trace *t) {
    df_free(t->scaled);
    for (int k = 0; k < 5; k++) df_free(t->relu[k]);
    memset(t, 0, sizeof *t);
}

df_status df_lpips_trunk(const df_lpips *m, const float *x01, int H, int W, df_lpips_trace *t) {
    memset(t, 0, sizeof *t);
    // sizes
    int h = H, w = W;
    for (int k = 0; k < 5; k++) {
        if (k == 1 || k == 2) h = df_mconv_out(h, 3, 2, 0), w = df_mconv_out(w, 3, 2, 0);
        const df_mconv *c = &m->conv[k];
        if (h < 1 || w < 1) h = w = 0;
        h = df_mconv_out(h, c->kh, c->sh, c->ph), w = df_mconv_out(w, c->kw, c->sw, c->pw);
        DF_FAIL_IF(h < 1 || w < 1, DF_ERR_SHAPE,
                   "image of %dx%d is too small for LPIPS (AlexNet needs at least 31x31)", W, H);
        t->h[k] = h, t->w[k] = w, t->c[k] = c->cout;
    }
    static const float shift[3] = {-0.030f, -0.088f, -0.188f}, scale[3] = {0.458f, 0.448f, 0.450f};
    const size_t P = (size_t)H * W;
    t->scaled = df_malloc(P * 3 * sizeof(float));
    for (int k = 0; k < 5; k++)
        t->relu[k] = df_malloc((size_t)t->h[k] * t->w[k] * t->c[k] * sizeof(float) + 64);
    int ok = t->scaled != NULL;
    for (int k = 0; k < 5; k++) ok = ok && t->relu[k];
    if (!ok) {
        df_lpips_trace_free(t);
        return DF_ERROR(DF_ERR_NOMEM, "LPIPS activations of a %dx%d image", W, H);
    }
    for (size_t p = 0; p < P; p++)
        for (int c = 0; c < 3; c++) {
            const float v = 2.0f * x01[p * 3 + c] - 1.0f;
            t->scaled[p * 3 + c] = (v - shift[c]) / scale[c];
        }
    const float *x = t->scaled;
    h = H, w = W;
    int cin = 3;
    float *pool = NULL;
    for (int k = 0; k < 5; k++) {
        if (k == 1 || k == 2) {
            const int h2 = df_mconv_out(h, 3, 2, 0), w2 = df_mconv_out(w, 3, 2, 0);
            df_free(pool);
            pool = df_malloc((size_t)h2 * w2 * cin * sizeof(float) + 64);
            if (!pool) {
                df_lpips_trace_free(t);
                return DF_ERROR(DF_ERR_NOMEM, "LPIPS pooling");
            }
            df_maxpool(pool, cin, x, h, w, cin, 3, 2, 0);
            x = pool, h = h2, w = w2;
        }
        df_mconv_forward(&m->conv[k], t->relu[k], t->c[k], x, h, w, 1);
        x = t->relu[k], h = t->h[k], w = t->w[k], cin = t->c[k];
    }
    df_free(pool);
    return DF_OK;
}

float df_lpips_layer(const df_lpips *m, int k, const float *r0, const float *r1, int P,
                     float *feat0, float *feat1, float *diff, float *lin) {
    const int C = m->conv[k].cout;
    const float *wl = m->lin[k];
    double total = 0;
    for (int p = 0; p < P; p++) {
        const float *a = r0 + (size_t)p * C, *b = r1 + (size_t)p * C;
        float s0 = 0, s1 = 0;
        for (int c = 0; c < C; c++) s0 += a[c] * a[c], s1 += b[c] * b[c];
        const float n0 = sqrtf(1e-8f + s0), n1 = sqrtf(1e-8f + s1);
        float l = 0;
        for (int c = 0; c < C; c++) {
            const float f0 = a[c] / n0, f1 = b[c] / n1, d = (f0 - f1) * (f0 - f1);
            if (feat0) feat0[(size_t)p * C + c] = f0;
            if (feat1) feat1[(size_t)p * C + c] = f1;
            if (diff) diff[(size_t)p * C + c] = d;
            l += wl[c] * d;
        }
        if (lin) lin[p] = l;
        total += l;
    }
    return (float)(total / P);
}

df_status df_lpips_distance(const df_lpips *m, const uint8_t *a, const uint8_t *b, int H, int W,
                            float *dist, float *per_layer) {
    DF_FAIL_IF(!m || !a || !b || !dist || H < 1 || W < 1, DF_ERR_ARG, "bad argument");
    const size_t n = (size_t)H * W * 3;
    float *x = df_malloc(n * sizeof(float));
    DF_FAIL_IF(!x, DF_ERR_NOMEM, "LPIPS input");
    df_lpips_trace t0, t1;
    for (size_t i = 0; i < n; i++) x[i] = (float)a[i] / 255.0f;
    df_status st = df_lpips_trunk(m, x, H, W, &t0);
    if (st == DF_OK) {
        for (size_t i = 0; i < n; i++) x[i] = (float)b[i] / 255.0f;
        st = df_lpips_trunk(m, x, H, W, &t1);
        if (st != DF_OK) df_lpips_trace_free(&t0);
    }
    df_free(x);
    if (st != DF_OK) return st;
    float sum = 0;
    for (int k = 0; k < 5; k++) {
        const float r = df_lpips_layer(m, k, t0.relu[k], t1.relu[k], t0.h[k] * t0.w[k], NULL,
                                       NULL, NULL, NULL);
        if (per_layer) per_layer[k] = r;
        sum += r;
    }
    df_lpips_trace_free(&t0);
    df_lpips_trace_free(&t1);
    *dist = sum;
    return DF_OK;
}
