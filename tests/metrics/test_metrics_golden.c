// distrifuse metrics vs the references in ../shared/golden/metrics (torchmetrics PSNR / LPIPS,
// clean-fid resize / features / statistics / FID, torchvision is_gt resize), with the tolerances
// of its README. One part per argument: resize | psnr | lpips | lpips_layers | inception | fid |
// frechet. Exit 77 when the golden folder is absent.
#include "df_golden.h"

#include "distrifuse/metrics.h"
#include "metrics/inception_impl.h"
#include "metrics/lpips_impl.h"

#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *g_cases[4] = {"main", "sizes", "same", "gt"};
static const char *g_dirs[4][2] = {
    {"a", "b"}, {"sizes_a", "sizes_b"}, {"same_a", "same_b"}, {"gt_a", "gt_b"}};

static df_st_file *open_st(const char *name) {
    df_st_file *f = NULL;
    if (df_st_open(dfg_path("metrics/%s", name), &f) != DF_OK) {
        fprintf(stderr, "cannot open %s: %s\n", name, df_last_error());
        exit(1);
    }
    return f;
}

// U8 tensor [N][3][H][W] (or [3][H][W]) image n -> HWC (malloc'ed).
static uint8_t *u8_image(const df_st_file *f, const char *name, int n, int *H, int *W) {
    const df_st_tensor *t = df_st_find(f, name);
    if (!t || t->dtype != DF_DTYPE_U8) {
        fprintf(stderr, "golden tensor %s missing or not U8\n", name);
        exit(1);
    }
    const int nd = t->ndim;
    const int h = (int)t->shape[nd - 2], w = (int)t->shape[nd - 1];
    const uint8_t *src = (const uint8_t *)t->data + (size_t)n * 3 * h * w;
    uint8_t *out = malloc((size_t)h * w * 3);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < h * w; i++) out[(size_t)i * 3 + c] = src[(size_t)c * h * w + i];
    *H = h, *W = w;
    return out;
}

static const uint8_t *u8_raw(const df_st_file *f, const char *name, size_t n) {
    const df_st_tensor *t = df_st_find(f, name);
    if (!t || t->dtype != DF_DTYPE_U8 || t->numel != n) {
        fprintf(stderr, "golden tensor %s missing / not U8 / not %zu elements\n", name, n);
        exit(1);
    }
    return t->data;
}

static uint8_t *read_png(const char *rel, int *H, int *W) {
    uint8_t *rgb = NULL;
    if (df_metrics_read_image(dfg_path("metrics/%s", rel), &rgb, W, H) != DF_OK) {
        fprintf(stderr, "%s\n", df_last_error());
        exit(1);
    }
    return rgb;
}

static cJSON *g_manifest;
static cJSON *case_json(const char *kind, const char *name) {
    const cJSON *cases = cJSON_GetObjectItem(g_manifest, "cases");
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *k = cJSON_GetObjectItem(c, "kind"), *n = cJSON_GetObjectItem(c, "case");
        if (k && !strcmp(k->valuestring, kind) && (!name || (n && !strcmp(n->valuestring, name))))
            return (cJSON *)c;
    }
    fprintf(stderr, "manifest: no case %s/%s\n", kind, name ? name : "");
    exit(1);
}

static double jnum(const cJSON *o, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *c = o;
    for (char *tok = strtok(buf, "."); tok && c; tok = strtok(NULL, "."))
        c = cJSON_GetObjectItem(c, tok);
    if (!c) {
        fprintf(stderr, "manifest: %s missing\n", path);
        exit(1);
    }
    if (cJSON_IsString(c) && !strcmp(c->valuestring, "inf")) return INFINITY;
    return c->valuedouble;
}

// Images of folder pair k as the pairs of compute_metrics (A resized for gt).
static void pair_images(int k, int i, uint8_t **a, uint8_t **b, int *H, int *W) {
    df_path_list l0, l1;
    EXPECT_OK(df_metrics_list_pairs(dfg_path("metrics/%s", g_dirs[k][0]), &l0));
    EXPECT_OK(df_metrics_list_pairs(dfg_path("metrics/%s", g_dirs[k][1]), &l1));
    int h0, w0, h1, w1;
    EXPECT_OK(df_metrics_read_image(l0.paths[i], a, &w0, &h0));
    EXPECT_OK(df_metrics_read_image(l1.paths[i], b, &w1, &h1));
    if (k == 3 && (h0 != 1024 || w0 != 1024)) {
        uint8_t *t = malloc((size_t)1024 * 1024 * 3);
        df_resize_bilinear_aa_u8(t, 1024, 1024, *a, h0, w0);
        df_metrics_free(*a);
        *a = t, h0 = w0 = 1024;
    }
    EXPECT_EQ_I64(h0, h1);
    EXPECT_EQ_I64(w0, w1);
    *H = h1, *W = w1;
    df_path_list_free(&l0);
    df_path_list_free(&l1);
}

static int case_count(int k) {
    df_path_list l;
    EXPECT_OK(df_metrics_list_pairs(dfg_path("metrics/%s", g_dirs[k][0]), &l));
    const int n = l.n;
    df_path_list_free(&l);
    return n;
}

// ---------------------------------------------------------------------------------------------
static void test_resize(void) {
    df_st_file *c = open_st("cases.safetensors"), *g = open_st("gt_resize.safetensors");
    // clean-fid bicubic resize (bit-exact port expected; tolerance abs 1e-4)
    static const char *rs[3][2] = {{"main_a00", "a/img_00.png"},
                                   {"sizes_a00", "sizes_a/img_00.png"},
                                   {"gt_b00", "gt_b/img_00.png"}};
    for (int i = 0; i < 3; i++) {
        int H, W;
        uint8_t *img = read_png(rs[i][1], &H, &W);
        float *got = malloc(sizeof(float) * 299 * 299 * 3),
              *nchw = malloc(sizeof(float) * 299 * 299 * 3);
        df_cleanfid_resize(got, 299, 299, img, H, W);
        dfg_nhwc_to_nchw(nchw, got, 1, 3, 299, 299);
        char name[64];
        snprintf(name, sizeof name, "out.fid.resize.%s", rs[i][0]);
        float *want = dfg_need_f32(c, name, NULL);
        const double m = dfg_max_abs(nchw, want, (size_t)299 * 299 * 3);
        fprintf(stderr, "clean-fid resize %s (%dx%d): max |diff| %.3g\n", rs[i][0], W, H, m);
        EXPECT_LE_F64(m, 1e-4);
        free(img), free(got), free(nchw), free(want);
    }
    // is_gt: torchvision Resize((1024, 1024)) antialias bilinear, round half to even
    for (int i = 0; i < 3; i++) {
        int H, W;
        char rel[64];
        snprintf(rel, sizeof rel, "gt_a/img_%02d.png", i);
        uint8_t *img = read_png(rel, &H, &W);
        if (i < 2) { // the stored source equals our PNG decode + 3-channel expansion
            char nm[64];
            snprintf(nm, sizeof nm, "in.gt.src_u8.%02d", i);
            int h2, w2;
            uint8_t *src = u8_image(g, nm, 0, &h2, &w2);
            EXPECT_EQ_I64(h2, H);
            EXPECT_EQ_I64(w2, W);
            EXPECT_TRUE(memcmp(src, img, (size_t)H * W * 3) == 0);
            free(src);
        }
        uint8_t *out = malloc((size_t)1024 * 1024 * 3);
        df_resize_bilinear_aa_u8(out, 1024, 1024, img, H, W);
        const int down = H > 1024 || W > 1024;
        size_t bad = 0, checked = 0;
        int maxd = 0;
        char nm[96];
        if (i == 0) {
            snprintf(nm, sizeof nm, "out.gt.resized_u8.%02d", i);
            const uint8_t *want = u8_raw(g, nm, (size_t)3 * 1024 * 1024);
            for (int ch = 0; ch < 3; ch++)
                for (int p = 0; p < 1024 * 1024; p++) {
                    const int d =
                        abs((int)out[(size_t)p * 3 + ch] - want[(size_t)ch * 1024 * 1024 + p]);
                    bad += d != 0, checked++, maxd = d > maxd ? d : maxd;
                }
        } else {
            snprintf(nm, sizeof nm, "out.gt.resized_u8.%02d.rows_0_1_511_1023", i);
            const uint8_t *rows = u8_raw(g, nm, (size_t)3 * 4 * 1024);
            static const int ry[4] = {0, 1, 511, 1023};
            for (int ch = 0; ch < 3; ch++)
                for (int r = 0; r < 4; r++)
                    for (int x = 0; x < 1024; x++) {
                        const int d = abs((int)out[((size_t)ry[r] * 1024 + x) * 3 + ch] -
                                          rows[((size_t)ch * 4 + r) * 1024 + x]);
                        bad += d != 0, checked++, maxd = d > maxd ? d : maxd;
                    }
            snprintf(nm, sizeof nm, "out.gt.resized_u8.%02d.cols_0_1023", i);
            const uint8_t *cols = u8_raw(g, nm, (size_t)3 * 1024 * 2);
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < 1024; y++)
                    for (int k = 0; k < 2; k++) {
                        const int x = k ? 1023 : 0;
                        const int d = abs((int)out[((size_t)y * 1024 + x) * 3 + ch] -
                                          cols[((size_t)ch * 1024 + y) * 2 + k]);
                        bad += d != 0, checked++, maxd = d > maxd ? d : maxd;
                    }
            // row / column sums: exact for upscaling; +-1 on <= 1e-4 of the pixels when down
            snprintf(nm, sizeof nm, "out.gt.resized_u8.%02d.row_sums", i);
            float *rsum = dfg_need_f32(g, nm, NULL);
            snprintf(nm, sizeof nm, "out.gt.resized_u8.%02d.col_sums", i);
            float *csum = dfg_need_f32(g, nm, NULL);
            double sum_dev = 0;
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < 1024; y++) {
                    double rs_ = 0, cs = 0;
                    for (int x = 0; x < 1024; x++) {
                        rs_ += out[((size_t)y * 1024 + x) * 3 + ch];
                        cs += out[((size_t)x * 1024 + y) * 3 + ch];
                    }
                    sum_dev += fabs(rs_ - rsum[ch * 1024 + y]) + fabs(cs - csum[ch * 1024 + y]);
                }
            fprintf(stderr, "is_gt resize %d: sum of |row/col sum diffs| %.0f\n", i, sum_dev);
            // each pixel off by one moves one row sum and one column sum by one
            EXPECT_LE_F64(sum_dev, down ? 2.0 * 1e-4 * 3 * 1024 * 1024 : 0.0);
            free(rsum), free(csum);
        }
        fprintf(stderr, "is_gt resize %d (%dx%d, %s): %zu/%zu pixels differ, max %d\n", i, W, H,
                down ? "down" : "up", bad, checked, maxd);
        if (down) {
            EXPECT_LE_F64(maxd, 1);
            EXPECT_LE_F64((double)bad, 1e-4 * checked + 1);
        } else {
            EXPECT_EQ_I64(bad, 0);
        }
        free(img), free(out);
    }
    df_st_close(c);
    df_st_close(g);
}

// ---------------------------------------------------------------------------------------------
static void check_val(const char *label, double got, double want, double atol, double rtol) {
    df_test_checks++;
    int ok;
    if (isinf(want)) ok = isinf(got) && got > 0;
    else ok = fabs(got - want) <= atol + rtol * fabs(want);
    fprintf(stderr, "  %s: got %.9g want %.9g%s\n", label, got, want, ok ? "" : "  FAIL");
    if (!ok) df_test_failures++;
}

static void test_psnr_lpips(int with_lpips) {
    df_st_file *c = open_st("cases.safetensors");
    df_lpips *lp = NULL;
    if (with_lpips)
        EXPECT_OK(df_lpips_load(dfg_path("metrics/lpips_alex_random.safetensors"), &lp));
    if (with_lpips && !lp) exit(1);
    for (int k = 0; k < 4; k++) {
        const int n = case_count(k);
        char nm[96];
        snprintf(nm, sizeof nm, "out.%s.%s", g_cases[k], with_lpips ? "lpips" : "psnr");
        float *want = dfg_need_f32(c, nm, NULL);
        float *got = malloc(sizeof(float) * (size_t)n);
        for (int i = 0; i < n; i++) {
            uint8_t *a, *b;
            int H, W;
            pair_images(k, i, &a, &b, &H, &W);
            if (k < 3) { // the PNG decode equals compute_metrics' read_image tensors
                int h2, w2;
                snprintf(nm, sizeof nm, "in.%s.a_u8", g_cases[k]);
                uint8_t *ga = u8_image(c, nm, i, &h2, &w2);
                snprintf(nm, sizeof nm, "in.%s.b_u8", g_cases[k]);
                uint8_t *gb = u8_image(c, nm, i, &h2, &w2);
                EXPECT_TRUE(memcmp(ga, a, (size_t)H * W * 3) == 0 &&
                            memcmp(gb, b, (size_t)H * W * 3) == 0);
                free(ga), free(gb);
            }
            if (with_lpips) {
                got[i] = NAN;
                EXPECT_OK(df_lpips_distance(lp, a, b, H, W, &got[i], NULL));
            } else {
                got[i] = df_psnr_u8(a, b, (size_t)H * W * 3);
            }
            snprintf(nm, sizeof nm, "%s %s[%d]", g_cases[k], with_lpips ? "LPIPS" : "PSNR", i);
            if (with_lpips) {
                check_val(nm, got[i], want[i], 1e-6, 1e-5);
                if (memcmp(a, b, (size_t)H * W * 3) == 0) EXPECT_TRUE(got[i] == 0.0f);
            } else {
                check_val(nm, got[i], want[i], 1e-4, 0);
            }
            df_metrics_free(a), df_metrics_free(b);
        }
        snprintf(nm, sizeof nm, "out.%s.%s_mean", g_cases[k], with_lpips ? "lpips" : "psnr");
        float *wm = dfg_need_f32(c, nm, NULL);
        snprintf(nm, sizeof nm, "%s %s mean", g_cases[k], with_lpips ? "LPIPS" : "PSNR");
        if (with_lpips) check_val(nm, df_mean_f32(got, n), wm[0], 1e-6, 1e-5);
        else check_val(nm, df_mean_f32(got, n), wm[0], 1e-4, 0);
        // and the manifest's float64 repr of the same values
        const cJSON *cj = case_json("compute_metrics", g_cases[k]);
        snprintf(nm, sizeof nm, "values.%s_mean", with_lpips ? "lpips" : "psnr");
        if (with_lpips) check_val("  (manifest)", df_mean_f32(got, n), jnum(cj, nm), 1e-6, 1e-5);
        else check_val("  (manifest)", df_mean_f32(got, n), jnum(cj, nm), 1e-4, 0);
        free(want), free(got), free(wm);
    }
    df_lpips_free(lp);
    df_st_close(c);
}

// Every intermediate of LPIPS for main pair 0.
static void cmp_map(const df_st_file *c, const char *name, const float *nhwc, int C, int h, int w,
                    double rel, double atol) {
    float *want = dfg_need_f32(c, name, NULL);
    float *got = malloc(sizeof(float) * (size_t)C * h * w);
    dfg_nhwc_to_nchw(got, nhwc, 1, C, h, w);
    dfg_compare(got, want, (size_t)C * h * w, rel, atol, name);
    free(want), free(got);
}

static void test_lpips_layers(void) {
    df_st_file *c = open_st("cases.safetensors");
    df_lpips *lp = NULL;
    EXPECT_OK(df_lpips_load(dfg_path("metrics/lpips_alex_random.safetensors"), &lp));
    if (!lp) exit(1);
    uint8_t *a, *b;
    int H, W;
    pair_images(0, 0, &a, &b, &H, &W);
    float *x[2];
    df_lpips_trace t[2];
    for (int s = 0; s < 2; s++) {
        const uint8_t *img = s ? b : a;
        x[s] = malloc(sizeof(float) * (size_t)H * W * 3);
        for (int i = 0; i < H * W * 3; i++) x[s][i] = (float)img[i] / 255.0f;
        char nm[64];
        snprintf(nm, sizeof nm, "dbg.lpips.in%d", s);
        cmp_map(c, nm, x[s], 3, H, W, 1e-7, 1e-7);
        EXPECT_OK(df_lpips_trunk(lp, x[s], H, W, &t[s]));
        snprintf(nm, sizeof nm, "dbg.lpips.scaled%d", s);
        cmp_map(c, nm, t[s].scaled, 3, H, W, 1e-6, 1e-6);
        for (int k = 0; k < 5; k++) {
            snprintf(nm, sizeof nm, "dbg.lpips.relu%d.%d", k + 1, s);
            cmp_map(c, nm, t[s].relu[k], t[s].c[k], t[s].h[k], t[s].w[k], 1e-5, 1e-4);
        }
    }
    // spatial sizes for 64x64: 15, 7, 3, 3, 3
    EXPECT_EQ_I64(t[0].h[0], 15);
    EXPECT_EQ_I64(t[0].h[1], 7);
    EXPECT_EQ_I64(t[0].h[4], 3);
    float total = 0;
    for (int k = 0; k < 5; k++) {
        const int P = t[0].h[k] * t[0].w[k], C = t[0].c[k];
        float *f0 = malloc(sizeof(float) * (size_t)P * C),
              *f1 = malloc(sizeof(float) * (size_t)P * C);
        float *d = malloc(sizeof(float) * (size_t)P * C), *l = malloc(sizeof(float) * (size_t)P);
        const float r = df_lpips_layer(lp, k, t[0].relu[k], t[1].relu[k], P, f0, f1, d, l);
        char nm[64];
        snprintf(nm, sizeof nm, "dbg.lpips.feat%d.0", k + 1);
        cmp_map(c, nm, f0, C, t[0].h[k], t[0].w[k], 1e-5, 1e-5);
        snprintf(nm, sizeof nm, "dbg.lpips.feat%d.1", k + 1);
        cmp_map(c, nm, f1, C, t[0].h[k], t[0].w[k], 1e-5, 1e-5);
        snprintf(nm, sizeof nm, "dbg.lpips.diff%d", k + 1);
        cmp_map(c, nm, d, C, t[0].h[k], t[0].w[k], 1e-4, 1e-6);
        snprintf(nm, sizeof nm, "dbg.lpips.lin%d", k + 1);
        cmp_map(c, nm, l, 1, t[0].h[k], t[0].w[k], 1e-4, 1e-6);
        snprintf(nm, sizeof nm, "dbg.lpips.res%d", k + 1);
        float *want = dfg_need_f32(c, nm, NULL);
        check_val(nm, r, want[0], 1e-6, 1e-5);
        total += r;
        free(want), free(f0), free(f1), free(d), free(l);
    }
    float *val = dfg_need_f32(c, "dbg.lpips.val", NULL);
    check_val("dbg.lpips.val", total, val[0], 1e-6, 1e-5);
    // the scaling constants
    float *shift = dfg_need_f32(c, "const.lpips.shift", NULL),
          *scale = dfg_need_f32(c, "const.lpips.scale", NULL);
    EXPECT_TRUE(shift[0] == -0.030f && shift[1] == -0.088f && shift[2] == -0.188f);
    EXPECT_TRUE(scale[0] == 0.458f && scale[1] == 0.448f && scale[2] == 0.450f);
    free(shift), free(scale), free(val);
    for (int s = 0; s < 2; s++) df_lpips_trace_free(&t[s]), free(x[s]);
    df_metrics_free(a), df_metrics_free(b);
    df_lpips_free(lp);
    df_st_close(c);
}

// ---------------------------------------------------------------------------------------------
typedef struct hook_ctx {
    const df_st_file *dbg;
    int stages;
} hook_ctx;

static void stage_hook(void *ctx, const char *stage, const float *x, int H, int W, int C) {
    hook_ctx *h = ctx;
    char nm[96];
    snprintf(nm, sizeof nm, "dbg.fid.%s.chmean", stage);
    float *want = dfg_need_f32(h->dbg, nm, NULL);
    float *got = malloc(sizeof(float) * (size_t)C * 16);
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int p = 0; p < H * W; p++) s += x[(size_t)p * C + c];
        got[c] = (float)(s / (H * W));
    }
    dfg_compare(got, want, (size_t)C, 1e-4, 1e-3, nm);
    free(want);
    snprintf(nm, sizeof nm, "dbg.fid.%s.crop_tl4", stage);
    want = dfg_need_f32(h->dbg, nm, NULL);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < 4; y++)
            for (int xx = 0; xx < 4; xx++)
                got[(c * 4 + y) * 4 + xx] = x[((size_t)y * W + xx) * C + c];
    dfg_compare(got, want, (size_t)C * 16, 1e-4, 1e-3, nm);
    free(want), free(got);
    h->stages++;
}

static void test_inception(void) {
    df_st_file *dbg = open_st("fid_debug.safetensors");
    df_inception *m = NULL;
    EXPECT_OK(df_inception_load(dfg_path("metrics/fid_inception_random.safetensors"), &m));
    if (!m) exit(1);
    int H, W;
    uint8_t *img = read_png("a/img_00.png", &H, &W);
    float *x = malloc(sizeof(float) * 299 * 299 * 3), *in = malloc(sizeof(float) * 299 * 299 * 3);
    df_cleanfid_resize(x, 299, 299, img, H, W);
    for (int i = 0; i < 299 * 299 * 3; i++) in[i] = (x[i] - 128.0f) / 128.0f;
    cmp_map(dbg, "dbg.fid.input", in, 3, 299, 299, 1e-6, 1e-6);
    hook_ctx h = {dbg, 0};
    float feat[DF_FID_DIM];
    EXPECT_OK(df_inception_forward_hooked(m, x, feat, stage_hook, &h));
    EXPECT_EQ_I64(h.stages, 18);
    float *want = dfg_need_f32(dbg, "dbg.fid.pool3", NULL);
    dfg_compare(feat, want, DF_FID_DIM, 1e-4, 1e-3, "dbg.fid.pool3");
    free(want), free(x), free(in), df_metrics_free(img);
    df_inception_free(m);
    df_st_close(dbg);
}

// pool3 features of every image (clean-fid order) and the statistics of every folder.
static void test_fid(void) {
    df_st_file *c = open_st("cases.safetensors");
    df_inception *m = NULL;
    EXPECT_OK(df_inception_load(dfg_path("metrics/fid_inception_random.safetensors"), &m));
    if (!m) exit(1);
    for (int k = 0; k < 4; k++) {
        df_fid_stats st[2], gst[2];
        for (int s = 0; s < 2; s++) {
            df_path_list l;
            EXPECT_OK(df_metrics_list_fid(dfg_path("metrics/%s", g_dirs[k][s]), &l));
            float *feats = NULL;
            EXPECT_OK(df_inception_features_files(m, &l, &feats, NULL, NULL));
            char nm[96];
            snprintf(nm, sizeof nm, "out.%s.fid.%c.features", g_cases[k], "ab"[s]);
            const df_st_tensor *t;
            float *want = dfg_need_f32(c, nm, &t);
            EXPECT_EQ_I64(t->shape[0], l.n);
            for (int i = 0; i < l.n && feats; i++) {
                char lab[128];
                snprintf(lab, sizeof lab, "%s features[%d] (%s)", g_cases[k], i,
                         l.paths[i] + strlen(dfg_dir));
                dfg_compare(feats + (size_t)i * DF_FID_DIM, want + (size_t)i * DF_FID_DIM,
                            DF_FID_DIM, 1e-4, 1e-3, lab);
            }
            // statistics: ours from our features, and the code itself on the golden features
            EXPECT_OK(df_fid_stats_from_features(feats, l.n, DF_FID_DIM, &st[s]));
            EXPECT_OK(df_fid_stats_from_features(want, l.n, DF_FID_DIM, &gst[s]));
            static const char *sum[4] = {"mu", "sigma_diag", "sigma_rowsum", "sigma_block64"};
            for (int q = 0; q < 4; q++) {
                snprintf(nm, sizeof nm, "out.%s.fid.%c.%s", g_cases[k], "ab"[s], sum[q]);
                const size_t n = q == 3 ? 64 * 64 : DF_FID_DIM;
                float *w = dfg_need_f32(c, nm, NULL);
                float *g1 = malloc(sizeof(float) * n), *g2 = malloc(sizeof(float) * n);
                for (int side = 0; side < 2; side++) {
                    const df_fid_stats *S = side ? &gst[s] : &st[s];
                    float *g = side ? g2 : g1;
                    for (size_t i = 0; i < n; i++) {
                        const size_t r = q == 3 ? i / 64 : i, cc = q == 3 ? i % 64 : i;
                        double v;
                        if (q == 0) v = S->mu[i];
                        else if (q == 1) v = S->sigma[i * DF_FID_DIM + i];
                        else if (q == 2) {
                            v = 0;
                            for (int j = 0; j < DF_FID_DIM; j++) v += S->sigma[i * DF_FID_DIM + j];
                        } else v = S->sigma[r * DF_FID_DIM + cc];
                        g[i] = (float)v;
                    }
                }
                char lab[128];
                double sc = 0;
                for (size_t i = 0; i < n; i++) sc = fmax(sc, fabs(w[i]));
                snprintf(lab, sizeof lab, "%s (ours)", nm);
                dfg_compare(g1, w, n, 1e-4, 1e-3 * (sc > 1 ? sc : 1), lab);
                snprintf(lab, sizeof lab, "%s (from golden features)", nm);
                dfg_compare(g2, w, n, 1e-6, 1e-6 * (sc > 1 ? sc : 1), lab);
                free(w), free(g1), free(g2);
            }
            free(want), free(feats);
            df_path_list_free(&l);
        }
        {
            const cJSON *cj = case_json("compute_metrics", g_cases[k]);
            const double ref = jnum(cj, "values.fid");
            const double tra = jnum(cj, "values.fid_terms.trace_sigma_a");
            const double trb = jnum(cj, "values.fid_terms.trace_sigma_b");
            const double exact = jnum(cj, "reference_variants.fid_exact_from_float32_features");
            double fid = NAN, gfid = NAN, terms[4];
            EXPECT_OK(df_frechet_distance(&st[0], &st[1], &fid, terms));
            EXPECT_OK(df_frechet_distance(&gst[0], &gst[1], &gfid, NULL));
            char lab[96];
            snprintf(lab, sizeof lab, "%s FID vs clean-fid", g_cases[k]);
            check_val(lab, fid, ref, 5e-6 * (tra + trb) + 1e-5 * fabs(ref), 0);
            snprintf(lab, sizeof lab, "%s FID (golden features) vs exact trace", g_cases[k]);
            check_val(lab, gfid, exact, 0, 5e-5);
            snprintf(lab, sizeof lab, "%s tr sigma_a", g_cases[k]);
            check_val(lab, terms[1], tra, 0, 1e-4);
            snprintf(lab, sizeof lab, "%s tr sigma_b", g_cases[k]);
            check_val(lab, terms[2], trb, 0, 1e-4);
            char fn[64];
            snprintf(fn, sizeof fn, "out.%s.fid", g_cases[k]);
            float *fv = dfg_need_f32(c, fn, NULL);
            snprintf(lab, sizeof lab, "%s FID vs out.%s.fid (F32)", g_cases[k], g_cases[k]);
            check_val(lab, fid, fv[0], 5e-6 * (tra + trb) + 1e-5 * fabs(ref), 0);
            free(fv);
        }
        for (int s = 0; s < 2; s++) df_fid_stats_free(&st[s]), df_fid_stats_free(&gst[s]);
    }
    df_inception_free(m);
    df_st_close(c);
}

// The Frechet step on well-conditioned covariances, and the statistics file round trip.
static void test_frechet(void) {
    df_st_file *c = open_st("cases.safetensors");
    const df_st_tensor *t1, *t2;
    float *f1 = dfg_need_f32(c, "in.frechet.feats1", &t1),
          *f2 = dfg_need_f32(c, "in.frechet.feats2", &t2);
    const int d = (int)t1->shape[1];
    df_fid_stats s1, s2;
    EXPECT_OK(df_fid_stats_from_features(f1, (int)t1->shape[0], d, &s1));
    EXPECT_OK(df_fid_stats_from_features(f2, (int)t2->shape[0], d, &s2));
    float *mu1 = dfg_need_f32(c, "out.frechet.mu1", NULL),
          *sg1 = dfg_need_f32(c, "out.frechet.sigma1", NULL);
    float *mu2 = dfg_need_f32(c, "out.frechet.mu2", NULL),
          *sg2 = dfg_need_f32(c, "out.frechet.sigma2", NULL);
    float *g = calloc((size_t)d * d, sizeof(float));
    for (int i = 0; i < d; i++) g[i] = (float)s1.mu[i];
    dfg_compare(g, mu1, (size_t)d, 1e-6, 1e-6, "frechet mu1");
    for (int i = 0; i < d; i++) g[i] = (float)s2.mu[i];
    dfg_compare(g, mu2, (size_t)d, 1e-6, 1e-6, "frechet mu2");
    for (int i = 0; i < d * d; i++) g[i] = (float)s1.sigma[i];
    dfg_compare(g, sg1, (size_t)d * d, 1e-6, 1e-6, "frechet sigma1");
    for (int i = 0; i < d * d; i++) g[i] = (float)s2.sigma[i];
    dfg_compare(g, sg2, (size_t)d * d, 1e-6, 1e-6, "frechet sigma2");
    double fid = NAN;
    EXPECT_OK(df_frechet_distance(&s1, &s2, &fid, NULL));
    const cJSON *cj = case_json("frechet_full_rank", NULL);
    check_val("frechet full rank vs clean-fid", fid, jnum(cj, "values.value"), 0, 1e-6);
    check_val("frechet full rank vs exact", fid, jnum(cj, "values.exact_float64"), 0, 1e-6);
    // symmetric in its arguments; 0 against itself
    double fid21 = NAN, fid11 = NAN;
    EXPECT_OK(df_frechet_distance(&s2, &s1, &fid21, NULL));
    EXPECT_OK(df_frechet_distance(&s1, &s1, &fid11, NULL));
    check_val("frechet symmetric", fid21, fid, 0, 1e-9);
    check_val("frechet self", fid11, 0, 1e-9, 0);
    // the statistics file keeps the doubles exactly
    char path[256];
    snprintf(path, sizeof path, "%s/metrics_frechet_stats.%d.safetensors", DF_BINARY_DIR,
             (int)getpid());
    EXPECT_OK(df_fid_stats_save(&s1, path));
    df_fid_stats r;
    EXPECT_OK(df_fid_stats_load(path, &r));
    EXPECT_EQ_I64(r.dim, d);
    EXPECT_EQ_I64(r.count, t1->shape[0]);
    EXPECT_TRUE(r.mu && !memcmp(r.mu, s1.mu, sizeof(double) * d) &&
                !memcmp(r.sigma, s1.sigma, sizeof(double) * d * d));
    remove(path);
    df_fid_stats_free(&r);
    free(g), free(f1), free(f2), free(mu1), free(mu2), free(sg1), free(sg2);
    df_fid_stats_free(&s1), df_fid_stats_free(&s2);
    df_st_close(c);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s resize|psnr|lpips|lpips_layers|inception|fid|frechet\n",
                argv[0]);
        return 2;
    }
    if (!(dfg_dir = df_test_golden_dir())) return 77;
    {
        FILE *f = fopen(dfg_path("metrics/README.md"), "r");
        if (!f) {
            fprintf(stderr, "SKIP: no metrics goldens in %s\n", dfg_dir);
            return 77;
        }
        fclose(f);
    }
    g_manifest = dfg_load_json(dfg_path("metrics/manifest.json"));
    if (!g_manifest) return 1;
    df_set_threads(2);
    const char *p = argv[1];
    if (!strcmp(p, "resize")) test_resize();
    else if (!strcmp(p, "psnr")) test_psnr_lpips(0);
    else if (!strcmp(p, "lpips")) test_psnr_lpips(1);
    else if (!strcmp(p, "lpips_layers")) test_lpips_layers();
    else if (!strcmp(p, "inception")) test_inception();
    else if (!strcmp(p, "fid")) test_fid();
    else if (!strcmp(p, "frechet")) test_frechet();
    else {
        fprintf(stderr, "unknown part %s\n", p);
        return 2;
    }
    cJSON_Delete(g_manifest);
    return df_test_result();
}
