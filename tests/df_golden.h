// Golden-data helpers for the test programs (header-only, like df_test.h; prefix dfg_): paths
// under the golden directory, whole golden tensors as f32, NCHW <-> NHWC, labelled tensor
// comparisons, and JSON files (manifests hold Python's -Infinity / NaN tokens, which cJSON
// rejects). Golden tensors are NCHW (torch); our activations are NHWC.
#ifndef DF_GOLDEN_H
#define DF_GOLDEN_H

#include "df_test.h"

#include "core/textfile.h"
#include "io/safetensors.h"

#include <cjson/cJSON.h>

#include <stdarg.h>

// The golden directory: main() sets it, e.g. `if (!(dfg_dir = df_test_golden_dir())) return 77;`
static const char *dfg_dir;

// "<dfg_dir>/<printf(fmt, ...)>" in one of 8 rotating static buffers (so a few can be live).
static inline const char *dfg_path(const char *fmt, ...) DF_PRINTF(1, 2);
static inline const char *dfg_path(const char *fmt, ...) {
    static char buf[8][4608];
    static int k = 0;
    k = (k + 1) % 8;
    int n = snprintf(buf[k], sizeof buf[k], "%s/", dfg_dir ? dfg_dir : ".");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf[k] + n, sizeof buf[k] - (size_t)n, fmt, ap);
    va_end(ap);
    return buf[k];
}

// Whole tensor NAME of a golden file as f32 (malloc'ed); *t its entry (t may be NULL). Absent:
// NULL (for optional outputs). A read error prints the reason, counts a failed check, gives NULL.
static inline float *dfg_read_f32(const df_st_file *f, const char *name, const df_st_tensor **t) {
    const df_st_tensor *e = df_st_find(f, name);
    if (!e) return NULL;
    float *p = malloc(e->numel * sizeof(float) + 4); // + 4: never malloc(0)
    if (!p || df_st_read_f32(f, name, p, e->numel) != DF_OK) {
        fprintf(stderr, "reading golden tensor %s: %s\n", name, df_last_error());
        df_test_checks++;
        df_test_failures++;
        free(p);
        return NULL;
    }
    if (t) *t = e;
    return p;
}

// Same for a tensor the test cannot go on without: absent or unreadable ends the program (exit 1).
static inline float *dfg_need_f32(const df_st_file *f, const char *name, const df_st_tensor **t) {
    if (!df_st_find(f, name)) {
        fprintf(stderr, "%s: golden tensor %s missing\n", df_st_path(f), name);
        exit(1);
    }
    float *p = dfg_read_f32(f, name, t);
    if (!p) exit(1);
    return p;
}

// [B][C][H][W] -> [B][H][W][C]
static inline void dfg_nchw_to_nhwc(float *dst, const float *src, int B, int C, int H, int W) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    dst[(((size_t)b * H + y) * W + x) * C + c] =
                        src[(((size_t)b * C + c) * H + y) * W + x];
}

// [B][H][W][C] -> [B][C][H][W]
static inline void dfg_nhwc_to_nchw(float *dst, const float *src, int B, int C, int H, int W) {
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    dst[(((size_t)b * C + c) * H + y) * W + x] =
                        src[(((size_t)b * H + y) * W + x) * C + c];
}

// max |a - b| (NaN propagates).
static inline double dfg_max_abs(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

// Two checks: rel-L2 <= rel_tol (printed either way) and max |got - want| <= abs_tol.
static inline void dfg_compare(const float *got, const float *want, size_t n, double rel_tol,
                               double abs_tol, const char *label) {
    EXPECT_REL_L2(got, want, n, rel_tol, label);
    const double m = dfg_max_abs(got, want, n);
    df_test_checks++;
    if (!(m <= abs_tol)) {
        fprintf(stderr, "  %s: max |diff| %.3g > %.3g  FAIL\n", label, m, abs_tol);
        df_test_failures++;
    }
}

// A JSON file (Python's Infinity / -Infinity / NaN allowed: read as +-inf / null); NULL with a
// message when it cannot be read or parsed. Free with cJSON_Delete.
static inline cJSON *dfg_load_json(const char *path) {
    char *text = NULL;
    if (df_read_text_file(path, (size_t)64 << 20, 0, &text, NULL) != DF_OK) {
        fprintf(stderr, "%s\n", df_last_error());
        return NULL;
    }
    char *clean = df_json_from_python(text);
    free(text);
    cJSON *j = clean ? cJSON_Parse(clean) : NULL;
    free(clean);
    if (!j) fprintf(stderr, "%s: invalid JSON\n", path);
    return j;
}

#endif // DF_GOLDEN_H
