// core/cpu.h: feature detection against the compiler's own cpuid checks, variant names, the
// selection rules (auto, forced, limit) and the --cpu option helper.
#include "core/cpu.h"
#include "df_test.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <string.h>

int main(void) {
    const df_cpu_features *f = df_cpu_get_features();
    printf("cpu: %s\n", df_cpu_describe());
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    // the OS-enabled subsets can only be smaller than what the CPU reports
    if (f->avx2) EXPECT_TRUE(__builtin_cpu_supports("avx2"));
    if (f->avx512f) EXPECT_TRUE(__builtin_cpu_supports("avx512f"));
    if (f->avx512bw) EXPECT_TRUE(__builtin_cpu_supports("avx512bw"));
    if (f->fma) EXPECT_TRUE(__builtin_cpu_supports("fma"));
    // and on Linux the OS enables AVX / AVX-512 state whenever the CPU has it
    EXPECT_EQ_I64(f->avx2, __builtin_cpu_supports("avx2") != 0);
    EXPECT_EQ_I64(f->avx512f, __builtin_cpu_supports("avx512f") != 0);
#endif
    // names round-trip; unknown names are rejected
    const df_cpu_variant all[] = {DF_CPU_AUTO, DF_CPU_REF, DF_CPU_AVX2, DF_CPU_AVX512};
    for (int i = 0; i < 4; i++) {
        df_cpu_variant v = DF_CPU_REF;
        EXPECT_TRUE(df_cpu_variant_parse(df_cpu_variant_name(all[i]), &v));
        EXPECT_EQ_I64(v, all[i]);
    }
    df_cpu_variant v;
    EXPECT_TRUE(!df_cpu_variant_parse("sse9", &v) && !df_cpu_variant_parse("", &v));
    // support is monotone, the best is supported, ref always
    EXPECT_TRUE(df_cpu_supported(DF_CPU_REF));
    EXPECT_TRUE(df_cpu_supported(df_cpu_best()));
    if (df_cpu_supported(DF_CPU_AVX512)) EXPECT_TRUE(df_cpu_supported(DF_CPU_AVX2));
    if (df_cpu_supported(DF_CPU_AVX512)) EXPECT_TRUE(f->avx512f && f->avx512bw && f->avx512vl);
    if (df_cpu_supported(DF_CPU_AVX2)) EXPECT_TRUE(f->avx2 && f->fma && f->f16c);
    EXPECT_TRUE(!df_cpu_supported(DF_CPU_VARIANT_COUNT));
    // auto = best; forcing each supported variant; the others fail and leave it unchanged
    EXPECT_EQ_I64(df_cpu_variant_get(), df_cpu_best());
    for (int i = 1; i < 4; i++) {
        const df_cpu_variant before = df_cpu_variant_get();
        const int rc = df_cpu_set_variant(all[i]);
        EXPECT_EQ_I64(rc, df_cpu_supported(all[i]) ? 0 : -1);
        EXPECT_EQ_I64(df_cpu_variant_get(), rc == 0 ? all[i] : before);
    }
    char err[256] = "";
    EXPECT_EQ_I64(df_cpu_apply_option("bogus", err, sizeof err), -1);
    EXPECT_TRUE(strstr(err, "unknown variant 'bogus'") != NULL);
    if (!df_cpu_supported(DF_CPU_AVX512)) {
        EXPECT_EQ_I64(df_cpu_apply_option("avx512", err, sizeof err), -1);
        EXPECT_TRUE(strstr(err, "does not support") != NULL);
    }
    // the limit (MPI agreement) caps auto, and lowers the current variant
    EXPECT_EQ_I64(df_cpu_apply_option("auto", err, sizeof err), 0);
    EXPECT_EQ_I64(df_cpu_variant_get(), df_cpu_best());
    df_cpu_limit(DF_CPU_AVX2);
    EXPECT_TRUE(df_cpu_variant_get() <= DF_CPU_AVX2);
    df_cpu_set_variant(DF_CPU_AUTO);
    EXPECT_EQ_I64(df_cpu_variant_get(), df_cpu_best() < DF_CPU_AVX2 ? df_cpu_best() : DF_CPU_AVX2);
    df_cpu_limit(DF_CPU_REF);
    EXPECT_EQ_I64(df_cpu_variant_get(), DF_CPU_REF);
    // a dispatched kernel runs under the chosen variant
    float x[3] = {0.0f, 1.0f, -1.0f}, y[3];
    df_silu(y, x, 3);
    EXPECT_TRUE(y[0] == 0.0f && y[1] > 0.73f && y[1] < 0.74f);
    return df_test_result();
}
