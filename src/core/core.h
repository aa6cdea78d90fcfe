// Core utilities: dtypes, aligned memory, threads, timing, logging.
// Depends on nothing else in src/.
#ifndef DF_CORE_CORE_H
#define DF_CORE_CORE_H

#include "core/error.h"
#include "distrifuse/util.h" // df_set_threads, df_time_s, df_peak_rss_mb, df_log (public)

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------------------------------------
// dtypes (the safetensors set; compute is always f32)
typedef enum df_dtype {
    DF_DTYPE_F32 = 0,
    DF_DTYPE_F16,
    DF_DTYPE_BF16,
    DF_DTYPE_F64,
    DF_DTYPE_I64,
    DF_DTYPE_I32,
    DF_DTYPE_I16,
    DF_DTYPE_I8,
    DF_DTYPE_U8,
    DF_DTYPE_U16,
    DF_DTYPE_U32,
    DF_DTYPE_U64,
    DF_DTYPE_BOOL,
    DF_DTYPE_COUNT
} df_dtype;

size_t df_dtype_size(df_dtype t);                   // bytes per element
const char *df_dtype_name(df_dtype t);              // "F16" (safetensors spelling)
int df_dtype_parse(const char *s, df_dtype *out);   // returns 1 if known

// IEEE half / bfloat16 scalar conversions (round-to-nearest-even on the way down).
float df_f16_to_f32(uint16_t h);
uint16_t df_f32_to_f16(float f);
float df_bf16_to_f32(uint16_t h);
uint16_t df_f32_to_bf16(float f);

// ---------------------------------------------------------------------------------------------
// memory: 64-byte aligned; df_free accepts NULL.
void *df_malloc(size_t bytes);
void *df_calloc(size_t n, size_t size);
void df_free(void *p);

// ---------------------------------------------------------------------------------------------
// threads (df_set_threads / df_get_threads: distrifuse/util.h). The thread settings of the process (OpenMP max threads, OpenBLAS threads, df_get_threads), so
// that a library call that sets its own count can put the caller's back.
typedef struct df_threads_state {
    int df, omp, blas;
} df_threads_state;
df_threads_state df_threads_save(void);
void df_threads_restore(const df_threads_state *s);

// ---------------------------------------------------------------------------------------------
// logging (df_log and the levels: distrifuse/util.h)
void df_log_set_rank(int rank, int nranks);   // prefixes "[r1/4] " when nranks > 1

#endif // DF_CORE_CORE_H
