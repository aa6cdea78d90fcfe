// FID Inception-v3 (the TF 2015 graph as ported by pytorch-fid, the network clean-fid runs), up to
// pool3: 94 conv -> BatchNorm(eps 1e-3) -> ReLU blocks, BatchNorm folded into the conv weights.
#include "distrifuse/metrics.h"

#include "metrics/inception_impl.h"
#include "metrics/nn.h"
#include "metrics/weights_util.h"

#include "io/safetensors.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_def {
    char name[48];
    int cout, cin, kh, kw, s, ph, pw;
} conv_def;

#define MAX_CONVS 100

struct df_inception {
    int n;
    conv_def def[MAX_CONVS];
    df_mconv conv[MAX_CONVS];
};

static void add(df_inception *m, const char *blk, const char *br, int cout, int cin, int kh,
                int kw, int s, int ph, int pw) {
    DF_ASSERT(m->n < MAX_CONVS);
    conv_def *d = &m->def[m->n++];
    if (br) snprintf(d->name, sizeof d->name, "%s.%s", blk, br);
    else snprintf(d->name, sizeof d->name, "%s", blk);
    d->cout = cout, d->cin = cin, d->kh = kh, d->kw = kw, d->s = s, d->ph = ph, d->pw = pw;
}

// The architecture (torchvision Inception3 with pytorch-fid's FIDInceptionA/C/E_1/E_2 blocks).
static void build_defs(df_inception *m) {
    add(m, "Conv2d_1a_3x3", NULL, 32, 3, 3, 3, 2, 0, 0);
    add(m, "Conv2d_2a_3x3", NULL, 32, 32, 3, 3, 1, 0, 0);
    add(m, "Conv2d_2b_3x3", NULL, 64, 32, 3, 3, 1, 1, 1);
    add(m, "Conv2d_3b_1x1", NULL, 80, 64, 1, 1, 1, 0, 0);
    add(m, "Conv2d_4a_3x3", NULL, 192, 80, 3, 3, 1, 0, 0);
    static const char *a_blk[3] = {"Mixed_5b", "Mixed_5c", "Mixed_5d"};
    static const int a_cin[3] = {192, 256, 288}, a_pool[3] = {32, 64, 64};
    for (int i = 0; i < 3; i++) {
        const char *b = a_blk[i];
        const int ci = a_cin[i];
        add(m, b, "branch1x1", 64, ci, 1, 1, 1, 0, 0);
        add(m, b, "branch5x5_1", 48, ci, 1, 1, 1, 0, 0);
        add(m, b, "branch5x5_2", 64, 48, 5, 5, 1, 2, 2);
        add(m, b, "branch3x3dbl_1", 64, ci, 1, 1, 1, 0, 0);
        add(m, b, "branch3x3dbl_2", 96, 64, 3, 3, 1, 1, 1);
        add(m, b, "branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
        add(m, b, "branch_pool", a_pool[i], ci, 1, 1, 1, 0, 0);
    }
    add(m, "Mixed_6a", "branch3x3", 384, 288, 3, 3, 2, 0, 0);
    add(m, "Mixed_6a", "branch3x3dbl_1", 64, 288, 1, 1, 1, 0, 0);
    add(m, "Mixed_6a", "branch3x3dbl_2", 96, 64, 3, 3, 1, 1, 1);
    add(m, "Mixed_6a", "branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0);
    static const char *c_blk[4] = {"Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"};
    static const int c_c7[4] = {128, 160, 160, 192};
    for (int i = 0; i < 4; i++) {
        const char *b = c_blk[i];
        const int c7 = c_c7[i];
        add(m, b, "branch1x1", 192, 768, 1, 1, 1, 0, 0);
        add(m, b, "branch7x7_1", c7, 768, 1, 1, 1, 0, 0);
        add(m, b, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
        add(m, b, "branch7x7_3", 192, c7, 7, 1, 1, 3, 0);
        add(m, b, "branch7x7dbl_1", c7, 768, 1, 1, 1, 0, 0);
        add(m, b, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
        add(m, b, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
        add(m, b, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
        add(m, b, "branch7x7dbl_5", 192, c7, 1, 7, 1, 0, 3);
        add(m, b, "branch_pool", 192, 768, 1, 1, 1, 0, 0);
    }
    add(m, "Mixed_7a", "branch3x3_1", 192, 768, 1, 1, 1, 0, 0);
    add(m, "Mixed_7a", "branch3x3_2", 320, 192, 3, 3, 2, 0, 0);
    add(m, "Mixed_7a", "branch7x7x3_1", 192, 768, 1, 1, 1, 0, 0);
    add(m, "Mixed_7a", "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
    add(m, "Mixed_7a", "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
    add(m, "Mixed_7a", "branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0);
    static const char *e_blk[2] = {"Mixed_7b", "Mixed_7c"};
    static const int e_cin[2] = {1280, 2048};
    for (int i = 0; i < 2; i++) {
        const char *b = e_blk[i];
        const int ci = e_cin[i];
        add(m, b, "branch1x1", 320, ci, 1, 1, 1, 0, 0);
        add(m, b, "branch3x3_1", 384, ci, 1, 1, 1, 0, 0);
        add(m, b, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
        add(m, b, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
        add(m, b, "branch3x3dbl_1", 448, ci, 1, 1, 1, 0, 0);
        add(m, b, "branch3x3dbl_2", 384, 448, 3, 3, 1, 1, 1);
        add(m, b, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
        add(m, b, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
        add(m, b, "branch_pool", 192, ci, 1, 1, 1, 0, 0);
    }
}

void df_inception_free(df_inception *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++) df_mconv_release(&m->conv[i]);
    free(m);
}

static df_status load_conv(df_inception *m, const df_st_file *f, int i) {
    const conv_def *d = &m->def[i];
    df_mconv *c = &m->conv[i];
    c->cin = d->cin, c->cout = d->cout, c->kh = d->kh, c->kw = d->kw;
    c->sh = c->sw = d->s, c->ph = d->ph, c->pw = d->pw;
    char nm[96];
    const int64_t wd[4] = {d->cout, d->cin, d->kh, d->kw}, vd[1] = {d->cout};
    float *w = NULL, *bn[4] = {NULL, NULL, NULL, NULL};
    static const char *bn_names[4] = {"weight", "bias", "running_mean", "running_var"};
    snprintf(nm, sizeof nm, "%s.conv.weight", d->name);
    df_status st = df_metrics_read_tensor(f, nm, NULL, 4, wd, &w);
    for (int k = 0; k < 4 && st == DF_OK; k++) {
        snprintf(nm, sizeof nm, "%s.bn.%s", d->name, bn_names[k]);
        st = df_metrics_read_tensor(f, nm, NULL, 1, vd, &bn[k]);
    }
    if (st == DF_OK) {
        // BatchNorm (inference): y = (x - mean) / sqrt(var + eps) * gamma + beta
        float *scale = df_malloc(sizeof(float) * (size_t)d->cout);
        c->bias = df_malloc(sizeof(float) * (size_t)d->cout);
        if (!scale || !c->bias) st = DF_ERROR(DF_ERR_NOMEM, "BatchNorm of %s", d->name);
        for (int co = 0; st == DF_OK && co < d->cout; co++) {
            scale[co] = bn[0][co] / sqrtf(bn[3][co] + 0.001f);
            c->bias[co] = bn[1][co] - bn[2][co] * scale[co];
        }
        if (st == DF_OK) st = df_mconv_pack(c, w, scale);
        df_free(scale);
    }
    df_free(w);
    for (int k = 0; k < 4; k++) df_free(bn[k]);
    return st;
}

df_status df_inception_load(const char *path, df_inception **out) {
    *out = NULL;
    df_inception *m = calloc(1, sizeof *m);
    DF_FAIL_IF(!m, DF_ERR_NOMEM, "inception model");
    build_defs(m);
    df_st_file *f = NULL;
    df_status st = df_st_open(path, &f);
    for (int i = 0; st == DF_OK && i < m->n; i++) st = load_conv(m, f, i);
    df_st_close(f);
    if (st != DF_OK) {
        df_inception_free(m);
        return st;
    }
    *out = m;
    return DF_OK;
}

static const df_mconv *cv(const df_inception *m, const char *blk, const char *br) {
    char nm[48];
    if (br) snprintf(nm, sizeof nm, "%s.%s", blk, br);
    else snprintf(nm, sizeof nm, "%s", blk);
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->def[i].name, nm)) return &m->conv[i];
    DF_ASSERT(!"unknown inception conv");
    return NULL;
}

// Conv block -> y (rows of ldy floats); returns the output size in *Ho, *Wo.
static void bc(const df_inception *m, const char *blk, const char *br, float *y, int ldy,
               const float *x, int H, int W, int *Ho, int *Wo) {
    const df_mconv *c = cv(m, blk, br);
    df_mconv_forward(c, y, ldy, x, H, W, 1);
    if (Ho) *Ho = df_mconv_out(H, c->kh, c->sh, c->ph);
    if (Wo) *Wo = df_mconv_out(W, c->kw, c->sw, c->pw);
}

static float *buf(size_t n) {
    float *p = df_malloc(n * sizeof(float) + 64);
    DF_ASSERT(p);
    return p;
}

typedef struct fwd {
    const df_inception *m;
    df_inception_hook hook;
    void *ctx;
} fwd;

static void stage(const fwd *F, const char *name, const float *x, int H, int W, int C) {
    if (F->hook) F->hook(F->ctx, name, x, H, W, C);
}

// InceptionA (FIDInceptionA): 64 | 64 | 96 | pool_features
static float *block_a(const fwd *F, const char *b, const float *x, int H, int W, int cin,
                      int pf) {
    const int C = 64 + 64 + 96 + pf;
    const size_t P = (size_t)H * W;
    float *y = buf(P * C), *t1 = buf(P * 64), *t2 = buf(P * 96), *pl = buf(P * cin);
    bc(F->m, b, "branch1x1", y, C, x, H, W, NULL, NULL);
    bc(F->m, b, "branch5x5_1", t1, 48, x, H, W, NULL, NULL);
    bc(F->m, b, "branch5x5_2", y + 64, C, t1, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3dbl_1", t1, 64, x, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3dbl_2", t2, 96, t1, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3dbl_3", y + 128, C, t2, H, W, NULL, NULL);
    df_avgpool3_nopad(pl, cin, x, H, W, cin);
    bc(F->m, b, "branch_pool", y + 224, C, pl, H, W, NULL, NULL);
    df_free(t1), df_free(t2), df_free(pl);
    return y;
}

// InceptionC (FIDInceptionC): 192 | 192 | 192 | 192
static float *block_c(const fwd *F, const char *b, const float *x, int H, int W, int c7) {
    const int C = 768;
    const size_t P = (size_t)H * W;
    float *y = buf(P * C), *t1 = buf(P * c7), *t2 = buf(P * c7), *pl = buf(P * 768);
    bc(F->m, b, "branch1x1", y, C, x, H, W, NULL, NULL);
    bc(F->m, b, "branch7x7_1", t1, c7, x, H, W, NULL, NULL);
    bc(F->m, b, "branch7x7_2", t2, c7, t1, H, W, NULL, NULL);
    bc(F->m, b, "branch7x7_3", y + 192, C, t2, H, W, NULL, NULL);
    bc(F->m, b, "branch7x7dbl_1", t1, c7, x, H, W, NULL, NULL);
    bc(F->m, b, "branch7x7dbl_2", t2, c7, t1, H, W, NULL, NULL);
    bc(F->m, b, "branch7x7dbl_3", t1, c7, t2, H, W, NULL, NULL);
    bc(F->m, b, "branch7x7dbl_4", t2, c7, t1, H, W, NULL, NULL);
    bc(F->m, b, "branch7x7dbl_5", y + 384, C, t2, H, W, NULL, NULL);
    df_avgpool3_nopad(pl, 768, x, H, W, 768);
    bc(F->m, b, "branch_pool", y + 576, C, pl, H, W, NULL, NULL);
    df_free(t1), df_free(t2), df_free(pl);
    return y;
}

// InceptionE (FIDInceptionE_1 avg pool / FIDInceptionE_2 max pool): 320 | 768 | 768 | 192
static float *block_e(const fwd *F, const char *b, const float *x, int H, int W, int cin,
                      int maxpool) {
    const int C = 2048;
    const size_t P = (size_t)H * W;
    float *y = buf(P * C), *t1 = buf(P * 448), *t2 = buf(P * 384), *pl = buf(P * cin);
    bc(F->m, b, "branch1x1", y, C, x, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3_1", t1, 384, x, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3_2a", y + 320, C, t1, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3_2b", y + 704, C, t1, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3dbl_1", t1, 448, x, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3dbl_2", t2, 384, t1, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3dbl_3a", y + 1088, C, t2, H, W, NULL, NULL);
    bc(F->m, b, "branch3x3dbl_3b", y + 1472, C, t2, H, W, NULL, NULL);
    if (maxpool) df_maxpool(pl, cin, x, H, W, cin, 3, 1, 1);
    else df_avgpool3_nopad(pl, cin, x, H, W, cin);
    bc(F->m, b, "branch_pool", y + 1856, C, pl, H, W, NULL, NULL);
    df_free(t1), df_free(t2), df_free(pl);
    return y;
}

df_status df_inception_forward_hooked(const df_inception *m, const float *x, float *feat,
                                      df_inception_hook hook, void *ctx) {
    const fwd F = {m, hook, ctx};
    const int S = DF_FID_SIZE;
    const size_t n0 = (size_t)S * S * 3;
    float *in = buf(n0);
    for (size_t i = 0; i < n0; i++) in[i] = (x[i] - 128.0f) / 128.0f;
    int H = S, W = S, H2, W2;
    // stem
    float *a = buf((size_t)149 * 149 * 32);
    bc(m, "Conv2d_1a_3x3", NULL, a, 32, in, H, W, &H, &W);
    stage(&F, "Conv2d_1a_3x3", a, H, W, 32);
    df_free(in);
    float *b = buf((size_t)H * W * 32);
    bc(m, "Conv2d_2a_3x3", NULL, b, 32, a, H, W, &H, &W);
    stage(&F, "Conv2d_2a_3x3", b, H, W, 32);
    df_free(a);
    a = buf((size_t)H * W * 64);
    bc(m, "Conv2d_2b_3x3", NULL, a, 64, b, H, W, &H, &W);
    stage(&F, "Conv2d_2b_3x3", a, H, W, 64);
    df_free(b);
    H2 = df_mconv_out(H, 3, 2, 0), W2 = df_mconv_out(W, 3, 2, 0);
    b = buf((size_t)H2 * W2 * 64);
    df_maxpool(b, 64, a, H, W, 64, 3, 2, 0);
    H = H2, W = W2;
    stage(&F, "maxpool1", b, H, W, 64);
    df_free(a);
    a = buf((size_t)H * W * 80);
    bc(m, "Conv2d_3b_1x1", NULL, a, 80, b, H, W, &H, &W);
    stage(&F, "Conv2d_3b_1x1", a, H, W, 80);
    df_free(b);
    b = buf((size_t)H * W * 192);
    bc(m, "Conv2d_4a_3x3", NULL, b, 192, a, H, W, &H, &W);
    stage(&F, "Conv2d_4a_3x3", b, H, W, 192);
    df_free(a);
    H2 = df_mconv_out(H, 3, 2, 0), W2 = df_mconv_out(W, 3, 2, 0);
    a = buf((size_t)H2 * W2 * 192);
    df_maxpool(a, 192, b, H, W, 192, 3, 2, 0);
    H = H2, W = W2;
    stage(&F, "maxpool2", a, H, W, 192);
    df_free(b);
    // 35 x 35
    b = block_a(&F, "Mixed_5b", a, H, W, 192, 32);
    stage(&F, "Mixed_5b", b, H, W, 256);
    df_free(a);
    a = block_a(&F, "Mixed_5c", b, H, W, 256, 64);
    stage(&F, "Mixed_5c", a, H, W, 288);
    df_free(b);
    b = block_a(&F, "Mixed_5d", a, H, W, 288, 64);
    stage(&F, "Mixed_5d", b, H, W, 288);
    df_free(a);
    // Mixed_6a (InceptionB): 384 | 96 | 288 (max pool)
    {
        H2 = df_mconv_out(H, 3, 2, 0), W2 = df_mconv_out(W, 3, 2, 0);
        const size_t P = (size_t)H * W;
        float *y = buf((size_t)H2 * W2 * 768), *t1 = buf(P * 64), *t2 = buf(P * 96);
        bc(m, "Mixed_6a", "branch3x3", y, 768, b, H, W, NULL, NULL);
        bc(m, "Mixed_6a", "branch3x3dbl_1", t1, 64, b, H, W, NULL, NULL);
        bc(m, "Mixed_6a", "branch3x3dbl_2", t2, 96, t1, H, W, NULL, NULL);
        bc(m, "Mixed_6a", "branch3x3dbl_3", y + 384, 768, t2, H, W, NULL, NULL);
        df_maxpool(y + 480, 768, b, H, W, 288, 3, 2, 0);
        df_free(t1), df_free(t2), df_free(b);
        a = y, H = H2, W = W2;
        stage(&F, "Mixed_6a", a, H, W, 768);
    }
    // 17 x 17
    static const char *c_blk[4] = {"Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"};
    static const int c_c7[4] = {128, 160, 160, 192};
    for (int i = 0; i < 4; i++) {
        b = block_c(&F, c_blk[i], a, H, W, c_c7[i]);
        stage(&F, c_blk[i], b, H, W, 768);
        df_free(a);
        a = b;
    }
    // Mixed_7a (InceptionD): 320 | 192 | 768 (max pool)
    {
        H2 = df_mconv_out(H, 3, 2, 0), W2 = df_mconv_out(W, 3, 2, 0);
        const size_t P = (size_t)H * W;
        float *y = buf((size_t)H2 * W2 * 1280), *t1 = buf(P * 192), *t2 = buf(P * 192);
        bc(m, "Mixed_7a", "branch3x3_1", t1, 192, a, H, W, NULL, NULL);
        bc(m, "Mixed_7a", "branch3x3_2", y, 1280, t1, H, W, NULL, NULL);
        bc(m, "Mixed_7a", "branch7x7x3_1", t1, 192, a, H, W, NULL, NULL);
        bc(m, "Mixed_7a", "branch7x7x3_2", t2, 192, t1, H, W, NULL, NULL);
        bc(m, "Mixed_7a", "branch7x7x3_3", t1, 192, t2, H, W, NULL, NULL);
        bc(m, "Mixed_7a", "branch7x7x3_4", y + 320, 1280, t1, H, W, NULL, NULL);
        df_maxpool(y + 512, 1280, a, H, W, 768, 3, 2, 0);
        df_free(t1), df_free(t2), df_free(a);
        a = y, H = H2, W = W2;
        stage(&F, "Mixed_7a", a, H, W, 1280);
    }
    // 8 x 8
    b = block_e(&F, "Mixed_7b", a, H, W, 1280, 0);
    stage(&F, "Mixed_7b", b, H, W, 2048);
    df_free(a);
    a = block_e(&F, "Mixed_7c", b, H, W, 2048, 1);
    stage(&F, "Mixed_7c", a, H, W, 2048);
    df_free(b);
    // pool3: global average
    const size_t P = (size_t)H * W;
    for (int c = 0; c < DF_FID_DIM; c++) {
        double s = 0;
        for (size_t p = 0; p < P; p++) s += a[p * DF_FID_DIM + c];
        feat[c] = (float)(s / (double)P);
    }
    df_free(a);
    return DF_OK;
}

df_status df_inception_features(const df_inception *m, const float *x, float *feat) {
    DF_FAIL_IF(!m || !x || !feat, DF_ERR_ARG, "NULL argument");
    return df_inception_forward_hooked(m, x, feat, NULL, NULL);
}

df_status df_inception_features_u8(const df_inception *m, const uint8_t *rgb, int H, int W,
                                   float *feat) {
    DF_FAIL_IF(!m || !rgb || !feat || H < 1 || W < 1, DF_ERR_ARG, "bad argument");
    float *x = df_malloc(sizeof(float) * DF_FID_SIZE * DF_FID_SIZE * 3);
    DF_FAIL_IF(!x, DF_ERR_NOMEM, "inception input");
    df_cleanfid_resize(x, DF_FID_SIZE, DF_FID_SIZE, rgb, H, W);
    const df_status st = df_inception_forward_hooked(m, x, feat, NULL, NULL);
    df_free(x);
    return st;
}
