// Thread-local last-error message and status names.
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_last_error[1024];

const char *df_status_str(df_status s) {
    switch (s) {
    case DF_OK: return "DF_OK";
    case DF_ERR_ARG: return "DF_ERR_ARG";
    case DF_ERR_NOMEM: return "DF_ERR_NOMEM";
    case DF_ERR_IO: return "DF_ERR_IO";
    case DF_ERR_FORMAT: return "DF_ERR_FORMAT";
    case DF_ERR_SHAPE: return "DF_ERR_SHAPE";
    case DF_ERR_UNSUPPORTED: return "DF_ERR_UNSUPPORTED";
    case DF_ERR_COMM: return "DF_ERR_COMM";
    case DF_ERR_INTERNAL: return "DF_ERR_INTERNAL";
    case DF_ERR_NONFINITE: return "DF_ERR_NONFINITE";
    case DF_ERR_PEER: return "DF_ERR_PEER";
    case DF_STATUS_COUNT: break;
    }
    return "DF_ERR_UNKNOWN";
}

const char *df_last_error(void) {
    return g_last_error;
}

void df_clear_error(void) {
    g_last_error[0] = '\0';
}

df_status df_i_set_error(df_status code, const char *file, int line, const char *func,
                         const char *fmt, ...) {
    (void)file;
    (void)line;
    char msg[sizeof g_last_error - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(g_last_error, sizeof g_last_error, "%s: %s", func, msg);
    return code;
}

void df_i_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "distrifuse: %s:%d: assertion failed: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}

int df_i_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int df_i_add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}
