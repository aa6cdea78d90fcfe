// RNG: MT19937 reference outputs (golden-free) and torch.randn goldens (rng/randn.safetensors).
#include "core/rng.h"
#include "io/safetensors.h"

#include "df_test.h"

static void test_mt19937_reference(void) {
    // std::mt19937 / init_genrand(5489): first outputs and the C++ standard's 10000th value.
    static const uint32_t first[5] = {3499211612u, 581869302u, 3890346734u, 3586334585u,
                                      545404204u};
    df_rng r;
    df_rng_seed(&r, 5489);
    for (int i = 0; i < 5; i++) EXPECT_EQ_I64(df_rng_u32(&r), first[i]);
    for (int i = 5; i < 9999; i++) (void)df_rng_u32(&r);
    EXPECT_EQ_I64(df_rng_u32(&r), 4123659995u);

    // seeds alias modulo 2^32 (torch keeps the low 32 bits)
    df_rng a, b;
    df_rng_seed(&a, 42);
    df_rng_seed(&b, (UINT64_C(7) << 32) | 42u);
    int same = 1;
    for (int i = 0; i < 1000; i++) same &= df_rng_u32(&a) == df_rng_u32(&b);
    EXPECT_TRUE(same);

    // u64 = (first << 32) | second
    df_rng_seed(&a, 5489);
    EXPECT_EQ_I64((int64_t)(df_rng_u64(&a) >> 32), 3499211612);
    df_rng_seed(&a, 5489);
    (void)df_rng_u32(&a);
    EXPECT_EQ_I64(df_rng_u32(&a), 581869302);
}

// Golden-free invariants of the normal sampler.
static void test_randn_invariants(void) {
    enum { N = 1 << 16 };
    static float x[N];
    df_rng r;
    df_rng_seed(&r, 1234);
    df_rng_randn(&r, x, N);
    double s = 0, s2 = 0;
    int finite = 1;
    for (int i = 0; i < N; i++) {
        finite &= isfinite(x[i]) != 0;
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    const double mean = s / N, var = s2 / N - mean * mean;
    EXPECT_TRUE(finite);
    EXPECT_LE_F64(fabs(mean), 0.02);
    EXPECT_LE_F64(fabs(var - 1.0), 0.03);

    // A ragged tail: 17 values = one block of 16 + 16 fresh uniforms into slots 1..16;
    // slot 0 keeps the first block's value.
    float a[17], b[16];
    df_rng_seed(&r, 7);
    df_rng_randn(&r, a, 17);
    df_rng_seed(&r, 7);
    df_rng_randn(&r, b, 16);
    EXPECT_TRUE(a[0] == b[0]);
    EXPECT_TRUE(a[1] != b[1]);

    // Scalar path: one pair per two outputs, the second one cached across calls.
    float c[2], d1[1], d2[1];
    df_rng_seed(&r, 9);
    df_rng_randn(&r, c, 2);
    df_rng_seed(&r, 9);
    df_rng_randn(&r, d1, 1);
    df_rng_randn(&r, d2, 1);
    EXPECT_TRUE(c[0] == d1[0] && c[1] == d2[0]);
    // reseeding drops the cached value
    df_rng_seed(&r, 9);
    df_rng_randn(&r, d1, 1);
    df_rng_seed(&r, 9);
    df_rng_randn(&r, d2, 1);
    EXPECT_TRUE(d1[0] == d2[0]);
}

// The emulated Box-Muller block vs its libm twin over many uniforms, including the edges
// 0 and 1 - 2^-24 (u1 = 1 and 2^-24) and angles near multiples of pi/4: within 1e-6 abs.
static void test_fill16_vs_ref(void) {
    enum { NB = 4096 };
    static float a[NB * 16], b[NB * 16];
    df_rng r;
    df_rng_seed(&r, 99);
    for (int i = 0; i < NB * 16; i++) a[i] = (float)(df_rng_u32(&r) & 0xffffff) / 16777216.0f;
    const float top = 1.0f - 1.0f / 16777216.0f;
    const float edges[8] = {0.0f, top, 0.125f, 0.25f, 0.375f, 0.5f, 0.75f, 0.875f - 1e-7f};
    for (int j = 0; j < 8; j++) {
        a[j] = j & 1 ? top : 0.0f; // radius extremes
        a[j + 8] = edges[j];       // octant boundaries of the angle
    }
    memcpy(b, a, sizeof a);
    for (int i = 0; i < NB; i++) {
        df_rng_normal_fill_16(a + 16 * i);
        df_rng_normal_fill_16_ref(b + 16 * i);
    }
    df_allclose(a, b, NB * 16, 1e-6f, 0.0f, "fill16 vs ref");
    size_t exact = 0;
    for (int i = 0; i < NB * 16; i++) exact += a[i] == b[i];
    fprintf(stderr, "  fill16 vs libm ref: %zu/%d bit-identical\n", exact, NB * 16);
    EXPECT_TRUE(a[1] > 5.7f && a[1] < 5.8f); // sqrt(-2 ln 2^-24) * cos(2 pi top) = 5.768
}

static int check_tensor(const df_st_file *f, const char *name, const float *got, size_t n,
                        float atol) {
    const df_st_tensor *t = df_st_find(f, name);
    EXPECT_TRUE(t != NULL);
    if (!t) {
        fprintf(stderr, "  missing golden tensor %s\n", name);
        return 0;
    }
    EXPECT_EQ_I64((int64_t)t->numel, (int64_t)n);
    if (t->numel != n) return 0;
    float *want = malloc(n * sizeof *want);
    EXPECT_OK(df_st_read_f32(f, name, want, n));
    double maxd = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - (double)want[i]);
        if (d > maxd) maxd = d;
    }
    fprintf(stderr, "  %-36s n=%-6zu max |diff| %.3g\n", name, n, maxd);
    const int ok = df_allclose(got, want, n, atol, 0.0f, name);
    free(want);
    return ok;
}

static void test_randn_golden(const char *gdir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/rng/randn.safetensors", gdir);
    df_st_file *f = NULL;
    EXPECT_OK(df_st_open(path, &f));
    if (!f) return;

    static const uint64_t seeds[3] = {0, 233, 42};
    static const struct {
        const char *suffix;
        size_t n;
        float atol; // both paths are bit-exact (the README allows 1e-6 for the vectorised one)
    } shapes[4] = {{"1x4x64x64", 4 * 64 * 64, 0.0f},
                   {"1x4x8x8", 4 * 8 * 8, 0.0f},
                   {"16", 16, 0.0f},
                   {"7", 7, 0.0f}};
    static float buf[4 * 64 * 64];
    for (int s = 0; s < 3; s++) {
        for (int k = 0; k < 4; k++) {
            df_rng r;
            df_rng_seed(&r, seeds[s]);
            df_rng_randn(&r, buf, shapes[k].n);
            char name[128];
            snprintf(name, sizeof name, "out.seed%llu.%s", (unsigned long long)seeds[s],
                     shapes[k].suffix);
            check_tensor(f, name, buf, shapes[k].n, shapes[k].atol);
        }
    }

    // One generator, consecutive calls (7,), (16,), (1,4,8,8): the stream carries over.
    df_rng r;
    df_rng_seed(&r, 0);
    df_rng_randn(&r, buf, 7);
    check_tensor(f, "out.sequence_seed0.call0.7", buf, 7, 0.0f);
    df_rng_randn(&r, buf, 16);
    check_tensor(f, "out.sequence_seed0.call1.16", buf, 16, 0.0f);
    df_rng_randn(&r, buf, 256);
    check_tensor(f, "out.sequence_seed0.call2.1x4x8x8", buf, 256, 0.0f);

    df_st_close(f);
}

int main(void) {
    test_mt19937_reference();
    test_randn_invariants();
    test_fill16_vs_ref();
    const char *gdir = df_test_golden_dir();
    if (gdir) test_randn_golden(gdir);
    return df_test_result(); // the golden comparison is skipped without golden data
}
