// Core utilities: dtypes, f16/bf16 conversions, aligned memory, threads, timing, logging.
#include "core/core.h"

#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

// ---------------------------------------------------------------------------------------------
// dtypes

static const struct {
    const char *name;
    size_t size;
} k_dtypes[DF_DTYPE_COUNT] = {
    [DF_DTYPE_F32] = {"F32", 4},  [DF_DTYPE_F16] = {"F16", 2}, [DF_DTYPE_BF16] = {"BF16", 2},
    [DF_DTYPE_F64] = {"F64", 8},  [DF_DTYPE_I64] = {"I64", 8}, [DF_DTYPE_I32] = {"I32", 4},
    [DF_DTYPE_I16] = {"I16", 2},  [DF_DTYPE_I8] = {"I8", 1},   [DF_DTYPE_U8] = {"U8", 1},
    [DF_DTYPE_U16] = {"U16", 2},  [DF_DTYPE_U32] = {"U32", 4}, [DF_DTYPE_U64] = {"U64", 8},
    [DF_DTYPE_BOOL] = {"BOOL", 1},
};

size_t df_dtype_size(df_dtype t) {
    return (unsigned)t < DF_DTYPE_COUNT ? k_dtypes[t].size : 0;
}

const char *df_dtype_name(df_dtype t) {
    return (unsigned)t < DF_DTYPE_COUNT ? k_dtypes[t].name : "?";
}

int df_dtype_parse(const char *s, df_dtype *out) {
    for (int i = 0; i < DF_DTYPE_COUNT; i++) {
        if (strcmp(s, k_dtypes[i].name) == 0) {
            *out = (df_dtype)i;
            return 1;
        }
    }
    return 0;
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float df_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        if (mant == 0) return bits_f32(sign);
        // subnormal: value = mant * 2^-24
        float v = (float)mant * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t df_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); // rounds to >= 65520: inf
    if (ax < 0x38800000u) {                                   // subnormal or zero in f16
        float v = bits_f32(ax) * 16777216.0f;                 // * 2^24
        uint32_t m = (uint32_t)v;                              // truncated
        float rem = v - (float)m;
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t e = ((ax >> 23) - 112) << 10;
    uint32_t m = (ax >> 13) & 0x3ff;
    uint32_t r = ax & 0x1fff;
    uint32_t h = e | m;
    if (r > 0x1000 || (r == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float df_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t df_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

// ---------------------------------------------------------------------------------------------
// memory

void *df_malloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded < bytes) return NULL;
    if (posix_memalign(&p, 64, rounded) != 0) return NULL;
    return p;
}

void *df_calloc(size_t n, size_t size) {
    size_t bytes;
    if (!df_i_mul_size(n, size, &bytes)) return NULL;
    void *p = df_malloc(bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void df_free(void *p) {
    free(p);
}

// ---------------------------------------------------------------------------------------------
// threads

static int g_threads = 1;

void df_set_threads(int n) {
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    if (n <= 0) n = 1;
#endif
    g_threads = n;
    openblas_set_num_threads(n);
}

int df_get_threads(void) {
    return g_threads;
}

df_threads_state df_threads_save(void) {
    df_threads_state s;
    s.df = g_threads;
#ifdef _OPENMP
    s.omp = omp_get_max_threads();
#else
    s.omp = 1;
#endif
    s.blas = openblas_get_num_threads();
    return s;
}

void df_threads_restore(const df_threads_state *s) {
#ifdef _OPENMP
    omp_set_num_threads(s->omp);
#endif
    openblas_set_num_threads(s->blas);
    g_threads = s->df;
}

// ---------------------------------------------------------------------------------------------
// time, memory statistics

double df_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double df_peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0.0;
    char line[256];
    double mb = 0.0;
    while (fgets(line, sizeof line, f)) {
        long kb;
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) {
            mb = (double)kb / 1024.0;
            break;
        }
    }
    fclose(f);
    return mb;
}

// ---------------------------------------------------------------------------------------------
// logging

static int g_log_level = DF_LOG_INFO;
static int g_rank = 0, g_nranks = 1;

void df_log_set_level(int level) {
    g_log_level = level;
}

int df_log_get_level(void) {
    return g_log_level;
}

void df_log_set_rank(int rank, int nranks) {
    g_rank = rank;
    g_nranks = nranks;
}

void df_log(int level, const char *fmt, ...) {
    if (level > g_log_level) return;
    // INFO and DEBUG only from rank 0; warnings and errors from every rank.
    if (level >= DF_LOG_INFO && g_rank != 0) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g_nranks > 1)
        fprintf(stderr, "[r%d/%d] %s\n", g_rank, g_nranks, buf);
    else
        fprintf(stderr, "%s\n", buf);
}
