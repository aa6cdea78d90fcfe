// Small text files (see textfile.h).
#include "core/textfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

df_status df_read_text_file(const char *path, size_t max_bytes, int optional, char **out,
                            size_t *len) {
    DF_FAIL_IF(!path || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (optional && errno == ENOENT) return DF_OK;
        return DF_ERROR(DF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    df_status st = DF_OK;
    for (;;) {
        if (cap - n < 4096) { // room for one more chunk and the NUL
            const size_t nc = cap ? 2 * cap : 8192;
            char *nb = nc > cap ? realloc(buf, nc) : NULL;
            if (!nb) {
                st = DF_ERROR(DF_ERR_NOMEM, "out of memory reading %s", path);
                break;
            }
            buf = nb;
            cap = nc;
        }
        const size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n > max_bytes) {
            st = DF_ERROR(DF_ERR_FORMAT, "%s: larger than %zu bytes", path, max_bytes);
            break;
        }
        if (r == 0) break;
    }
    if (st == DF_OK && ferror(f)) st = DF_ERROR(DF_ERR_IO, "%s: read error", path);
    fclose(f);
    if (st != DF_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return DF_OK;
}

char *df_json_from_python(const char *in) {
    const size_t n = strlen(in);
    char *out = malloc(2 * n + 1); // "NaN" -> "null" grows by one per 3 chars at most
    if (!out) return NULL;
    size_t o = 0;
    int in_str = 0;
    for (size_t i = 0; i < n;) {
        const char ch = in[i];
        if (in_str) {
            out[o++] = ch;
            if (ch == '\\' && i + 1 < n) out[o++] = in[++i];
            else if (ch == '"') in_str = 0;
            i++;
        } else if (ch == '"') {
            in_str = 1;
            out[o++] = in[i++];
        } else if (strncmp(in + i, "Infinity", 8) == 0) {
            memcpy(out + o, "1e999", 5);
            o += 5;
            i += 8;
        } else if (strncmp(in + i, "NaN", 3) == 0) {
            memcpy(out + o, "null", 4);
            o += 4;
            i += 3;
        } else {
            out[o++] = in[i++];
        }
    }
    out[o] = 0;
    return out;
}
