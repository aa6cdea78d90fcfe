// Internal error helpers: DF_FAIL_IF / DF_TRY / DF_ASSERT (zstd/ggml style).
#ifndef DF_CORE_ERROR_H
#define DF_CORE_ERROR_H

#include "distrifuse/status.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#    define DF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#    define DF_PRINTF(a, b)
#endif

// Records a message "func: <formatted>" as the thread's last error and returns code.
df_status df_i_set_error(df_status code, const char *file, int line, const char *func,
                         const char *fmt, ...) DF_PRINTF(5, 6);

#define DF_ERROR(code, ...) df_i_set_error((code), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define DF_FAIL_IF(cond, code, ...)                                                            \
    do {                                                                                       \
        if (cond) return df_i_set_error((code), __FILE__, __LINE__, __func__, __VA_ARGS__);    \
    } while (0)

#define DF_TRY(expr)                                                                           \
    do {                                                                                       \
        const df_status df_try_st_ = (expr);                                                   \
        if (df_try_st_ != DF_OK) return df_try_st_;                                            \
    } while (0)

// Always-on assertion for internal invariants (never for bad input).
_Noreturn void df_i_assert_fail(const char *expr, const char *file, int line);
#define DF_ASSERT(x)                                                                           \
    do {                                                                                       \
        if (!(x)) df_i_assert_fail(#x, __FILE__, __LINE__);                                    \
    } while (0)

// Overflow-checked size arithmetic for file-controlled values. Return 0 on overflow.
int df_i_mul_size(size_t a, size_t b, size_t *out);
int df_i_add_size(size_t a, size_t b, size_t *out);

#endif // DF_CORE_ERROR_H
