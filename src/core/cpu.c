// CPU feature detection (cpuid + xgetbv) and the kernel variant choice (see cpu.h).
#include "core/cpu.h"

#include <stdio.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#    include <cpuid.h>
#    define CPU_X86 1
#else
#    define CPU_X86 0
#endif

static df_cpu_features g_feat;
static int g_feat_done = 0;
// Current variant (-2: not resolved yet) and the limit of DF_CPU_AUTO.
static int g_var = -2;
static int g_limit = DF_CPU_VARIANT_COUNT - 1;
static char g_desc[160];

#if CPU_X86
static unsigned long long xgetbv0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

static void detect(df_cpu_features *f) {
    memset(f, 0, sizeof *f);
#if CPU_X86
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return;
    const unsigned maxleaf = a;
    memcpy(f->vendor, &b, 4);
    memcpy(f->vendor + 4, &d, 4);
    memcpy(f->vendor + 8, &c, 4);
    f->vendor[12] = 0;
    __get_cpuid(1, &a, &b, &c, &d);
    const unsigned fam = (a >> 8) & 0xf, mod = (a >> 4) & 0xf;
    f->family = (int)(fam == 0xf ? fam + ((a >> 20) & 0xff) : fam);
    f->model = (int)(fam == 0xf || fam == 6 ? mod + (((a >> 16) & 0xf) << 4) : mod);
    const int fma = (c >> 12) & 1, movbe = (c >> 22) & 1, osxsave = (c >> 27) & 1,
              avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    const int os_ymm = (xcr0 & 0x6) == 0x6;              // SSE + AVX state
    const int os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0; // opmask + ZMM_Hi256 + Hi16_ZMM
    const int os_amx = (xcr0 & 0x60000) == 0x60000;     // XTILECFG + XTILEDATA
    unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
    if (maxleaf >= 7) {
        __cpuid_count(7, 0, a, b7, c7, d7);
        unsigned bb, cc, dd;
        __cpuid_count(7, 1, a71, bb, cc, dd);
    }
    unsigned ea = 0, eb = 0, ec = 0, ed = 0;
    __get_cpuid(0x80000001, &ea, &eb, &ec, &ed);
    const int lzcnt = (ec >> 5) & 1, bmi1 = (b7 >> 3) & 1, bmi2 = (b7 >> 8) & 1;
    const int base_v3 = os_ymm && avx && movbe && lzcnt && bmi1;
    f->avx2 = base_v3 && ((b7 >> 5) & 1);
    f->fma = base_v3 && fma;
    f->f16c = base_v3 && f16c;
    f->bmi2 = base_v3 && bmi2;
    f->avx512f = os_zmm && ((b7 >> 16) & 1);
    f->avx512dq = f->avx512f && ((b7 >> 17) & 1);
    f->avx512cd = f->avx512f && ((b7 >> 28) & 1);
    f->avx512bw = f->avx512f && ((b7 >> 30) & 1);
    f->avx512vl = f->avx512f && ((b7 >> 31) & 1);
    f->avx512_vnni = f->avx512f && ((c7 >> 11) & 1);
    f->avx512_bf16 = f->avx512f && ((a71 >> 5) & 1);
    f->amx_bf16 = os_amx && ((d7 >> 22) & 1) && ((d7 >> 24) & 1);
    unsigned br[12];
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &br[4 * i], &br[4 * i + 1], &br[4 * i + 2],
                        &br[4 * i + 3]);
        memcpy(f->brand, br, 48);
        f->brand[48] = 0;
        // trim leading/trailing blanks
        char *s = f->brand;
        while (*s == ' ') s++;
        memmove(f->brand, s, strlen(s) + 1);
        for (size_t n = strlen(f->brand); n > 0 && f->brand[n - 1] == ' '; n--)
            f->brand[n - 1] = 0;
    }
#endif
}

const df_cpu_features *df_cpu_get_features(void) {
    if (!__atomic_load_n(&g_feat_done, __ATOMIC_ACQUIRE)) {
        df_cpu_features f;
        detect(&f);
        g_feat = f; // every thread computes the same bytes
        __atomic_store_n(&g_feat_done, 1, __ATOMIC_RELEASE);
    }
    return &g_feat;
}

const char *df_cpu_variant_name(df_cpu_variant v) {
    switch (v) {
    case DF_CPU_REF: return "ref";
    case DF_CPU_AVX2: return "avx2";
    case DF_CPU_AVX512: return "avx512";
    case DF_CPU_AUTO: return "auto";
    default: return "?";
    }
}

int df_cpu_variant_parse(const char *s, df_cpu_variant *out) {
    static const df_cpu_variant all[] = {DF_CPU_AUTO, DF_CPU_REF, DF_CPU_AVX2, DF_CPU_AVX512};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, df_cpu_variant_name(all[i])) == 0) {
            *out = all[i];
            return 1;
        }
    return 0;
}

int df_cpu_supported(df_cpu_variant v) {
    const df_cpu_features *f = df_cpu_get_features();
    switch (v) {
    case DF_CPU_REF: return 1;
#if defined(DF_KV_X86)
    case DF_CPU_AVX2: return f->avx2 && f->fma && f->f16c && f->bmi2;
    case DF_CPU_AVX512:
        return df_cpu_supported(DF_CPU_AVX2) && f->avx512f && f->avx512bw && f->avx512dq &&
               f->avx512vl && f->avx512cd;
#endif
    default: (void)f; return 0;
    }
}

df_cpu_variant df_cpu_best(void) {
    for (int v = DF_CPU_VARIANT_COUNT - 1; v > 0; v--)
        if (df_cpu_supported((df_cpu_variant)v)) return (df_cpu_variant)v;
    return DF_CPU_REF;
}

static int best_within_limit(void) {
    int b = (int)df_cpu_best();
    return b < g_limit ? b : g_limit;
}

int df_cpu_set_variant(df_cpu_variant v) {
    if (v == DF_CPU_AUTO) {
        __atomic_store_n(&g_var, best_within_limit(), __ATOMIC_RELEASE);
        return 0;
    }
    if ((int)v < 0 || v >= DF_CPU_VARIANT_COUNT || !df_cpu_supported(v)) return -1;
    __atomic_store_n(&g_var, (int)v, __ATOMIC_RELEASE);
    return 0;
}

void df_cpu_limit(df_cpu_variant max) {
    if ((int)max < 0) max = DF_CPU_REF;
    if ((int)max < g_limit) g_limit = (int)max;
    const int cur = __atomic_load_n(&g_var, __ATOMIC_ACQUIRE);
    if (cur == -2 || cur > g_limit) __atomic_store_n(&g_var, best_within_limit(), __ATOMIC_RELEASE);
}

df_cpu_variant df_cpu_variant_get(void) {
    int v = __atomic_load_n(&g_var, __ATOMIC_ACQUIRE);
    if (v < 0) {
        v = best_within_limit();
        __atomic_store_n(&g_var, v, __ATOMIC_RELEASE);
    }
    return (df_cpu_variant)v;
}

int df_cpu_has_bf16(void) {
    return df_cpu_supported(DF_CPU_AVX512) && df_cpu_get_features()->avx512_bf16;
}

static int g_bf16_off; // df_cpu_limit_bf16(0): an MPI job where some rank lacks it
void df_cpu_limit_bf16(int allow) {
    if (!allow) __atomic_store_n(&g_bf16_off, 1, __ATOMIC_RELEASE);
}
int df_cpu_bf16_allowed(void) {
    return !__atomic_load_n(&g_bf16_off, __ATOMIC_ACQUIRE);
}

const char *df_cpu_describe(void) {
    const df_cpu_features *f = df_cpu_get_features();
    char feats[96] = "";
    static const struct {
        df_cpu_variant v;
        const char *name;
    } vs[] = {{DF_CPU_AVX2, " avx2"}, {DF_CPU_AVX512, " avx512"}};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        if (df_cpu_supported(vs[i].v)) strcat(feats, vs[i].name);
    if (df_cpu_has_bf16()) strcat(feats, " avx512_bf16");
    if (f->amx_bf16) strcat(feats, " amx_bf16");
    snprintf(g_desc, sizeof g_desc, "%s (%s, family %d model %d; cpu has:%s)",
             df_cpu_variant_name(df_cpu_variant_get()), f->brand[0] ? f->brand : "unknown CPU",
             f->family, f->model, feats[0] ? feats : " baseline only");
    return g_desc;
}

int df_cpu_apply_option(const char *name, char *err, int errlen) {
    df_cpu_variant v;
    if (!df_cpu_variant_parse(name, &v)) {
        snprintf(err, (size_t)errlen, "--cpu: unknown variant '%s' (auto, avx2, avx512, ref)",
                 name ? name : "");
        return -1;
    }
    if (df_cpu_set_variant(v) != 0) {
        snprintf(err, (size_t)errlen,
                 "--cpu %s: this CPU does not support the %s kernels (supported: ref%s%s)",
                 name, name, df_cpu_supported(DF_CPU_AVX2) ? ", avx2" : "",
                 df_cpu_supported(DF_CPU_AVX512) ? ", avx512" : "");
        return -1;
    }
    return 0;
}
