// Minimal test helpers: EXPECT_* macros that count failures, and tolerance comparators.
// Each test program's main() returns df_test_result() (non-zero if any expectation failed).
#ifndef DF_TEST_H
#define DF_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int df_test_failures = 0;
static int df_test_checks = 0;

#define DF_EXPECT_BASE(a, op, b, type, fmt)                                                    \
    do {                                                                                       \
        const type df_ta_ = (a), df_tb_ = (b);                                                 \
        df_test_checks++;                                                                      \
        if (!(df_ta_ op df_tb_)) {                                                             \
            fprintf(stderr, "%s:%d: expected %s %s %s, got %" fmt " vs %" fmt "\n", __FILE__,   \
                    __LINE__, #a, #op, #b, df_ta_, df_tb_);                                    \
            df_test_failures++;                                                                \
        }                                                                                      \
    } while (0)

#define EXPECT_EQ_I64(a, b) DF_EXPECT_BASE(a, ==, b, int64_t, PRId64)
#define EXPECT_NE_I64(a, b) DF_EXPECT_BASE(a, !=, b, int64_t, PRId64)
#define EXPECT_LE_F64(a, b) DF_EXPECT_BASE(a, <=, b, double, "g")
#define EXPECT_GE_F64(a, b) DF_EXPECT_BASE(a, >=, b, double, "g")
#define EXPECT_TRUE(c)                                                                         \
    do {                                                                                       \
        df_test_checks++;                                                                      \
        if (!(c)) {                                                                            \
            fprintf(stderr, "%s:%d: expected true: %s\n", __FILE__, __LINE__, #c);            \
            df_test_failures++;                                                                \
        }                                                                                      \
    } while (0)
#define EXPECT_OK(expr)                                                                        \
    do {                                                                                       \
        df_status df_st_ = (expr);                                                             \
        df_test_checks++;                                                                      \
        if (df_st_ != DF_OK) {                                                                 \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #expr,           \
                    df_status_str(df_st_), df_last_error());                                   \
            df_test_failures++;                                                                \
        }                                                                                      \
    } while (0)
// Expects a specific failure status and a non-empty error message containing `needle`.
#define EXPECT_ERR(expr, code, needle)                                                         \
    do {                                                                                       \
        df_status df_st_ = (expr);                                                             \
        df_test_checks++;                                                                      \
        if (df_st_ != (code) || !strstr(df_last_error(), (needle))) {                          \
            fprintf(stderr, "%s:%d: %s: expected %s with \"%s\", got %s: %s\n", __FILE__,       \
                    __LINE__, #expr, df_status_str(code), (needle), df_status_str(df_st_),     \
                    df_last_error());                                                          \
            df_test_failures++;                                                                \
        }                                                                                      \
    } while (0)

// |got - want| <= atol + rtol*|want| per element; NaN fails. Prints first 5 mismatches.
static inline int df_allclose(const float *got, const float *want, size_t n, float atol,
                              float rtol, const char *label) {
    size_t bad = 0;
    double maxd = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= atol + rtol * fabs((double)want[i]))) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: got %.8g want %.8g\n", label, i, got[i], want[i]);
            bad++;
        }
        if (d > maxd || d != d) maxd = d;
    }
    df_test_checks++;
    if (bad) {
        fprintf(stderr, "%s: %zu/%zu mismatches, max |diff| %.3g\n", label, bad, n, maxd);
        df_test_failures++;
    }
    return bad == 0;
}

// Relative L2 error ||got - want|| / ||want||.
static inline double df_rel_l2(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    if (den == 0) return sqrt(num);
    return sqrt(num / den);
}

// Checks rel-L2 <= tol and prints the figure either way.
#define EXPECT_REL_L2(got, want, n, tol, label)                                                \
    do {                                                                                       \
        double df_r_ = df_rel_l2((got), (want), (n));                                          \
        df_test_checks++;                                                                      \
        fprintf(stderr, "  %-40s rel-L2 %.3e (tol %.0e)%s\n", (label), df_r_, (double)(tol),   \
                (df_r_ <= (tol) && df_r_ == df_r_) ? "" : "  FAIL");                           \
        if (!(df_r_ <= (tol))) df_test_failures++;                                             \
    } while (0)

// Golden data directory: $DF_GOLDEN or ../shared/golden relative to the source tree.
// Returns NULL (and prints a SKIP line) if absent.
#ifndef DF_SOURCE_DIR
#    define DF_SOURCE_DIR "."
#endif
static inline const char *df_test_golden_dir(void) {
    static char buf[4096];
    const char *env = getenv("DF_GOLDEN");
    if (env && *env) snprintf(buf, sizeof buf, "%s", env);
    else snprintf(buf, sizeof buf, "%s/../shared/golden", DF_SOURCE_DIR);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/README.md", buf);
    FILE *f = fopen(probe, "r");
    if (!f) {
        fprintf(stderr, "SKIP: golden data not found at %s (set DF_GOLDEN)\n", buf);
        return NULL;
    }
    fclose(f);
    return buf;
}

// The test models folder (tests/make_test_models.sh: tiny-sdxl, tiny-sd15, tiny-sd15-single
// written by df-make-model, the golden fixtures' shapes with random weights): $DF_TEST_MODELS or
// <build>/test-models, made here when absent (CTest makes it once, fixture df_models). NULL
// (with a message) if it cannot be made: the caller fails.
#ifndef DF_BINARY_DIR
#    define DF_BINARY_DIR "."
#endif
static inline const char *df_test_models_dir(void) {
    static char buf[4096];
    const char *env = getenv("DF_TEST_MODELS");
    if (env && *env) snprintf(buf, sizeof buf, "%s", env);
    else snprintf(buf, sizeof buf, "%s/test-models", DF_BINARY_DIR);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.done", buf);
    FILE *f = fopen(probe, "r");
    if (!f) {
        char cmd[8800];
        snprintf(cmd, sizeof cmd, "sh '%s/tests/make_test_models.sh' '%s/tools/df-make-model' '%s'",
                 DF_SOURCE_DIR, DF_BINARY_DIR, buf);
        if (system(cmd) != 0 || !(f = fopen(probe, "r"))) {
            fprintf(stderr, "FAIL: cannot make the test models in %s (%s)\n", buf, cmd);
            return NULL;
        }
    }
    fclose(f);
    return buf;
}

// 1 if any expectation failed or none ran (a test that checks nothing must not pass; one that
// cannot run exits 77 with the reason instead).
static inline int df_test_result(void) {
    fprintf(stderr, "%d checks, %d failed\n", df_test_checks, df_test_failures);
    if (df_test_checks == 0) {
        fprintf(stderr, "FAIL: no checks ran\n");
        return 1;
    }
    return df_test_failures ? 1 : 0;
}

#endif // DF_TEST_H
