// safetensors reader (mmap + cJSON header, every field validated) and atomic writer.
// Format: sdxl.md §1.1. 8-byte LE header length N, N bytes of JSON (padded with spaces), data.
#include "io/safetensors.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_HEADER_CAP ((uint64_t)100000000) // the reference library's 100 MB cap
#define ST_TWO63 9223372036854775808.0      // 2^63 as a double

struct df_st_file {
    char *path;
    void *map;          // whole file, PROT_READ (NULL when the file is empty)
    size_t map_size;
    cJSON *root;        // parsed header; tensor names and metadata point into it
    const cJSON *meta;  // the __metadata__ object or NULL
    int count;
    df_st_tensor *tensors;         // [count], header order
    const df_st_tensor **by_name;  // [count], sorted by name (df_st_find)
};

// ---------------------------------------------------------------------------------------------
// Reader helpers

static uint64_t load_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int is_json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// A JSON number that is a non-negative integer below 2^63. Returns 1 and sets *out.
static int json_uint(const cJSON *it, uint64_t *out) {
    if (!cJSON_IsNumber(it)) return 0;
    double d = it->valuedouble;
    if (!isfinite(d) || d < 0 || d >= ST_TWO63 || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_by_name(const void *a, const void *b) {
    const df_st_tensor *x = *(const df_st_tensor *const *)a;
    const df_st_tensor *y = *(const df_st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

typedef struct {
    uint64_t begin, end;
    int idx;
} st_region;

static int cmp_region(const void *a, const void *b) {
    const st_region *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

// Validates one tensor entry `it` (key it->string) and fills *t. data_size: bytes after header.
static df_status parse_entry(const char *path, const cJSON *it, const unsigned char *data,
                             uint64_t data_size, df_st_tensor *t, uint64_t *begin_out,
                             uint64_t *end_out) {
    const char *name = it->string;
    DF_FAIL_IF(!cJSON_IsObject(it), DF_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object",
               path, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    DF_FAIL_IF(!jd, DF_ERR_FORMAT, "%s: tensor '%s': missing \"dtype\"", path, name);
    DF_FAIL_IF(!js, DF_ERR_FORMAT, "%s: tensor '%s': missing \"shape\"", path, name);
    DF_FAIL_IF(!jo, DF_ERR_FORMAT, "%s: tensor '%s': missing \"data_offsets\"", path, name);

    DF_FAIL_IF(!cJSON_IsString(jd) || !jd->valuestring, DF_ERR_FORMAT,
               "%s: tensor '%s': \"dtype\" is not a string", path, name);
    DF_FAIL_IF(!df_dtype_parse(jd->valuestring, &t->dtype), DF_ERR_FORMAT,
               "%s: tensor '%s': unknown dtype \"%.32s\"", path, name, jd->valuestring);

    DF_FAIL_IF(!cJSON_IsArray(js), DF_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array",
               path, name);
    int nd = cJSON_GetArraySize(js);
    DF_FAIL_IF(nd > DF_ST_MAX_DIMS, DF_ERR_FORMAT,
               "%s: tensor '%s': shape has %d dims (max %d)", path, name, nd, DF_ST_MAX_DIMS);
    t->ndim = nd;
    int k = 0, has_zero = 0;
    for (const cJSON *d = js->child; d; d = d->next, k++) {
        uint64_t v;
        DF_FAIL_IF(!json_uint(d, &v), DF_ERR_FORMAT,
                   "%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, k);
        t->shape[k] = (int64_t)v;
        if (v == 0) has_zero = 1;
    }
    size_t numel = 1;
    if (has_zero) {
        numel = 0;
    } else {
        for (int i = 0; i < nd; i++) {
            DF_FAIL_IF(!df_i_mul_size(numel, (size_t)t->shape[i], &numel), DF_ERR_FORMAT,
                       "%s: tensor '%s': shape product overflows", path, name);
        }
    }
    size_t nbytes;
    DF_FAIL_IF(!df_i_mul_size(numel, df_dtype_size(t->dtype), &nbytes), DF_ERR_FORMAT,
               "%s: tensor '%s': byte size (shape product x dtype size) overflows", path, name);
    t->numel = numel;
    t->nbytes = nbytes;

    DF_FAIL_IF(!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2, DF_ERR_FORMAT,
               "%s: tensor '%s': \"data_offsets\" is not a [begin, end] array", path, name);
    uint64_t b, e;
    DF_FAIL_IF(!json_uint(jo->child, &b) || !json_uint(jo->child->next, &e), DF_ERR_FORMAT,
               "%s: tensor '%s': \"data_offsets\" are not non-negative integers", path, name);
    DF_FAIL_IF(b > e, DF_ERR_FORMAT, "%s: tensor '%s': data_offsets begin %" PRIu64
               " > end %" PRIu64, path, name, b, e);
    DF_FAIL_IF(e > data_size, DF_ERR_FORMAT,
               "%s: tensor '%s': data_offsets end %" PRIu64 " is past the data section (%" PRIu64
               " bytes): file truncated or offsets out of the file", path, name, e, data_size);
    DF_FAIL_IF(e - b != (uint64_t)nbytes, DF_ERR_FORMAT,
               "%s: tensor '%s': size mismatch: shape x %s needs %zu bytes, data_offsets span %"
               PRIu64, path, name, df_dtype_name(t->dtype), nbytes, e - b);
    t->name = name;
    t->data = data + b;
    *begin_out = b;
    *end_out = e;
    return DF_OK;
}

// Parses and validates the header of an opened mapping; fills f->root, f->meta, f->tensors,
// f->by_name, f->count.
static df_status parse_header(df_st_file *f) {
    const char *path = f->path;
    const unsigned char *base = f->map;
    const uint64_t fsize = f->map_size;
    DF_FAIL_IF(fsize < 8, DF_ERR_FORMAT,
               "%s: file is shorter than 8 bytes (%" PRIu64 "): not a safetensors file", path,
               fsize);
    const uint64_t n = load_le64(base);
    DF_FAIL_IF(n < 2, DF_ERR_FORMAT, "%s: header length %" PRIu64 " is too small", path, n);
    DF_FAIL_IF(n > ST_HEADER_CAP, DF_ERR_FORMAT,
               "%s: header length %" PRIu64 " exceeds the 100 MB cap (file size %" PRIu64 ")",
               path, n, fsize);
    DF_FAIL_IF(n > fsize - 8, DF_ERR_FORMAT,
               "%s: header length %" PRIu64 " is larger than the file (%" PRIu64 " bytes)", path,
               n, fsize);
    const char *hdr = (const char *)base + 8;
    DF_FAIL_IF(hdr[0] != '{', DF_ERR_FORMAT,
               "%s: header does not start with '{' (not a JSON object)", path);

    // cJSON gets a NUL-terminated, zero-padded copy: the mapping is not terminated, and old
    // cJSON versions can over-read by a byte on malformed strings.
    char *copy = malloc((size_t)n + 8);
    DF_FAIL_IF(!copy, DF_ERR_NOMEM, "%s: out of memory for a %" PRIu64 "-byte header", path, n);
    memcpy(copy, hdr, (size_t)n);
    memset(copy + n, 0, 8);
    const char *end = NULL;
    f->root = cJSON_ParseWithLengthOpts(copy, (size_t)n, &end, 0);
    size_t stop = end ? (size_t)(end - copy) : 0;
    int trailing_ok = 1;
    if (f->root) {
        for (size_t i = stop; i < n; i++) {
            if (!is_json_space(copy[i])) {
                trailing_ok = 0;
                break;
            }
        }
    }
    free(copy);
    DF_FAIL_IF(!f->root, DF_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu of %"
               PRIu64 ")", path, stop, n);
    DF_FAIL_IF(!trailing_ok, DF_ERR_FORMAT,
               "%s: header has trailing garbage after the JSON object (byte %zu of %" PRIu64 ")",
               path, stop, n);
    DF_FAIL_IF(!cJSON_IsObject(f->root), DF_ERR_FORMAT, "%s: header JSON is not an object", path);

    // Count tensors; validate __metadata__.
    int count = 0;
    for (const cJSON *it = f->root->child; it; it = it->next) {
        DF_FAIL_IF(!it->string, DF_ERR_FORMAT, "%s: header entry without a key", path);
        if (strcmp(it->string, "__metadata__") == 0) {
            DF_FAIL_IF(f->meta, DF_ERR_FORMAT, "%s: duplicate \"__metadata__\"", path);
            DF_FAIL_IF(!cJSON_IsObject(it), DF_ERR_FORMAT,
                       "%s: \"__metadata__\" is not a JSON object", path);
            for (const cJSON *m = it->child; m; m = m->next) {
                DF_FAIL_IF(!cJSON_IsString(m) || !m->valuestring, DF_ERR_FORMAT,
                           "%s: __metadata__ value for '%s' is not a string", path,
                           m->string ? m->string : "?");
            }
            f->meta = it;
            continue;
        }
        DF_FAIL_IF(count == INT32_MAX, DF_ERR_FORMAT, "%s: too many tensors", path);
        count++;
    }

    const uint64_t data_size = fsize - 8 - n;
    const unsigned char *data = base + 8 + n;
    f->tensors = calloc(count ? (size_t)count : 1, sizeof *f->tensors);
    f->by_name = calloc(count ? (size_t)count : 1, sizeof *f->by_name);
    st_region *reg = calloc(count ? (size_t)count : 1, sizeof *reg);
    if (!f->tensors || !f->by_name || !reg) {
        free(reg);
        return DF_ERROR(DF_ERR_NOMEM, "%s: out of memory for %d tensor entries", path, count);
    }
    int i = 0;
    for (const cJSON *it = f->root->child; it; it = it->next) {
        if (it == f->meta) continue;
        df_status st = parse_entry(path, it, data, data_size, &f->tensors[i], &reg[i].begin,
                                   &reg[i].end);
        if (st != DF_OK) {
            free(reg);
            return st;
        }
        reg[i].idx = i;
        f->by_name[i] = &f->tensors[i];
        i++;
    }
    f->count = count;

    // Non-overlapping regions (empty regions overlap nothing).
    qsort(reg, (size_t)count, sizeof *reg, cmp_region);
    uint64_t prev_end = 0;
    int prev = -1;
    for (int k = 0; k < count; k++) {
        if (reg[k].begin == reg[k].end) continue;
        if (prev >= 0 && reg[k].begin < prev_end) {
            const char *a = f->tensors[reg[prev].idx].name, *b = f->tensors[reg[k].idx].name;
            uint64_t pb = reg[prev].begin, pe = prev_end, kb = reg[k].begin, ke = reg[k].end;
            free(reg);
            return DF_ERROR(DF_ERR_FORMAT,
                            "%s: overlapping data regions: tensor '%s' [%" PRIu64 ", %" PRIu64
                            ") and tensor '%s' [%" PRIu64 ", %" PRIu64 ")",
                            path, a, pb, pe, b, kb, ke);
        }
        prev = k;
        prev_end = reg[k].end;
    }
    free(reg);

    // Unique names (cJSON keeps duplicate keys as separate items).
    qsort(f->by_name, (size_t)count, sizeof *f->by_name, cmp_by_name);
    for (int k = 1; k < count; k++) {
        DF_FAIL_IF(strcmp(f->by_name[k - 1]->name, f->by_name[k]->name) == 0, DF_ERR_FORMAT,
                   "%s: duplicate tensor name '%s'", path, f->by_name[k]->name);
    }
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Reader API

df_status df_st_open(const char *path, df_st_file **out) {
    DF_FAIL_IF(!out, DF_ERR_ARG, "out is NULL");
    *out = NULL;
    DF_FAIL_IF(!path, DF_ERR_ARG, "path is NULL");
    df_st_file *f = calloc(1, sizeof *f);
    DF_FAIL_IF(!f, DF_ERR_NOMEM, "%s: out of memory", path);
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return DF_ERROR(DF_ERR_NOMEM, "%s: out of memory", path);
    }
    df_status st = DF_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        st = DF_ERROR(DF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = DF_ERROR(DF_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = DF_ERROR(DF_ERR_IO, "%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    if (sb.st_size == 0) {
        st = DF_ERROR(DF_ERR_FORMAT, "%s: empty file (0 bytes): not a safetensors file", path);
        close(fd);
        goto fail;
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        st = DF_ERROR(DF_ERR_IO, "%s: file too large to map", path);
        close(fd);
        goto fail;
    }
    f->map_size = (size_t)sb.st_size;
    void *m = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (m == MAP_FAILED) {
        st = DF_ERROR(DF_ERR_IO, "%s: mmap of %zu bytes failed: %s", path, f->map_size,
                      strerror(err));
        goto fail;
    }
    f->map = m;
    st = parse_header(f);
    if (st != DF_OK) goto fail;
    *out = f;
    return DF_OK;
fail:
    df_st_close(f);
    return st;
}

void df_st_close(df_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_size);
    cJSON_Delete(f->root);
    free(f->tensors);
    free(f->by_name);
    free(f->path);
    free(f);
}

const char *df_st_path(const df_st_file *f) {
    return f ? f->path : NULL;
}

int df_st_count(const df_st_file *f) {
    return f ? f->count : 0;
}

const df_st_tensor *df_st_get(const df_st_file *f, int i) {
    if (!f || i < 0 || i >= f->count) return NULL;
    return &f->tensors[i];
}

const df_st_tensor *df_st_find(const df_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int lo = 0, hi = f->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->by_name[mid]->name);
        if (c == 0) return f->by_name[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *df_st_metadata(const df_st_file *f, const char *key) {
    if (!f || !f->meta || !key) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

df_status df_st_read_f32(const df_st_file *f, const char *name, float *dst, size_t n) {
    DF_FAIL_IF(!f || !name, DF_ERR_ARG, "file or name is NULL");
    const df_st_tensor *t = df_st_find(f, name);
    DF_FAIL_IF(!t, DF_ERR_FORMAT, "missing tensor '%s' in %s", name, f->path);
    DF_FAIL_IF(t->numel != n, DF_ERR_SHAPE,
               "tensor '%s' in %s has %zu elements, expected %zu", name, f->path, t->numel, n);
    DF_FAIL_IF(n && !dst, DF_ERR_ARG, "dst is NULL");
    const unsigned char *src = t->data;
    switch (t->dtype) {
    case DF_DTYPE_F32:
        if (n) memcpy(dst, src, n * sizeof(float));
        break;
    case DF_DTYPE_F16:
    case DF_DTYPE_BF16: {
        float (*to_f32)(uint16_t) = t->dtype == DF_DTYPE_F16 ? df_f16_to_f32 : df_bf16_to_f32;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = to_f32(h);
        }
        break;
    }
    default:
        return DF_ERROR(DF_ERR_SHAPE,
                        "tensor '%s' in %s has dtype %s; only F32/F16/BF16 convert to f32", name,
                        f->path, df_dtype_name(t->dtype));
    }
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Writer

typedef struct {
    char *name;
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
} st_wtensor;

struct df_st_writer {
    st_wtensor *t;
    int count, cap;
    char **meta; // [2*nmeta] key, value
    int nmeta, meta_cap;
};

df_status df_st_writer_create(df_st_writer **out) {
    DF_FAIL_IF(!out, DF_ERR_ARG, "out is NULL");
    *out = calloc(1, sizeof **out);
    DF_FAIL_IF(!*out, DF_ERR_NOMEM, "out of memory");
    return DF_OK;
}

void df_st_writer_destroy(df_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->count; i++) free(w->t[i].name);
    for (int i = 0; i < 2 * w->nmeta; i++) free(w->meta[i]);
    free(w->t);
    free(w->meta);
    free(w);
}

df_status df_st_writer_add(df_st_writer *w, const char *name, df_dtype dtype, int ndim,
                           const int64_t *shape, const void *data) {
    DF_FAIL_IF(!w || !name, DF_ERR_ARG, "writer or name is NULL");
    DF_FAIL_IF(strcmp(name, "__metadata__") == 0, DF_ERR_ARG,
               "tensor name \"__metadata__\" is reserved");
    DF_FAIL_IF((unsigned)dtype >= DF_DTYPE_COUNT, DF_ERR_ARG, "tensor '%s': invalid dtype %d",
               name, (int)dtype);
    DF_FAIL_IF(ndim < 0 || ndim > DF_ST_MAX_DIMS, DF_ERR_ARG,
               "tensor '%s': ndim %d out of range [0, %d]", name, ndim, DF_ST_MAX_DIMS);
    DF_FAIL_IF(ndim > 0 && !shape, DF_ERR_ARG, "tensor '%s': shape is NULL", name);
    size_t numel = 1;
    int has_zero = 0;
    for (int i = 0; i < ndim; i++) {
        DF_FAIL_IF(shape[i] < 0, DF_ERR_ARG, "tensor '%s': shape[%d] = %" PRId64 " is negative",
                   name, i, shape[i]);
        if (shape[i] == 0) has_zero = 1;
    }
    if (has_zero) numel = 0;
    for (int i = 0; i < ndim && !has_zero; i++) {
        DF_FAIL_IF((uint64_t)shape[i] > SIZE_MAX || !df_i_mul_size(numel, (size_t)shape[i], &numel),
                   DF_ERR_ARG, "tensor '%s': shape product overflows", name);
    }
    size_t nbytes;
    DF_FAIL_IF(!df_i_mul_size(numel, df_dtype_size(dtype), &nbytes), DF_ERR_ARG,
               "tensor '%s': byte size overflows", name);
    DF_FAIL_IF(nbytes && !data, DF_ERR_ARG, "tensor '%s': data is NULL", name);
    for (int i = 0; i < w->count; i++) {
        DF_FAIL_IF(strcmp(w->t[i].name, name) == 0, DF_ERR_ARG, "duplicate tensor name '%s'",
                   name);
    }
    if (w->count == w->cap) {
        int nc = w->cap ? 2 * w->cap : 16;
        st_wtensor *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        DF_FAIL_IF(!nt, DF_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        w->t = nt;
        w->cap = nc;
    }
    st_wtensor *t = &w->t[w->count];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    DF_FAIL_IF(!t->name, DF_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = nbytes;
    t->data = data;
    w->count++;
    return DF_OK;
}

df_status df_st_writer_meta(df_st_writer *w, const char *key, const char *value) {
    DF_FAIL_IF(!w || !key || !value, DF_ERR_ARG, "writer, key or value is NULL");
    for (int i = 0; i < w->nmeta; i++) {
        if (strcmp(w->meta[2 * i], key) == 0) { // replace
            char *v = strdup(value);
            DF_FAIL_IF(!v, DF_ERR_NOMEM, "out of memory");
            free(w->meta[2 * i + 1]);
            w->meta[2 * i + 1] = v;
            return DF_OK;
        }
    }
    if (w->nmeta == w->meta_cap) {
        int nc = w->meta_cap ? 2 * w->meta_cap : 4;
        char **nm = realloc(w->meta, (size_t)nc * 2 * sizeof *nm);
        DF_FAIL_IF(!nm, DF_ERR_NOMEM, "out of memory");
        w->meta = nm;
        w->meta_cap = nc;
    }
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return DF_ERROR(DF_ERR_NOMEM, "out of memory");
    }
    w->meta[2 * w->nmeta] = k;
    w->meta[2 * w->nmeta + 1] = v;
    w->nmeta++;
    return DF_OK;
}

// Growable string buffer for the header.
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} st_buf;

static void buf_put(st_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(st_buf *b, const char *s) {
    buf_put(b, s, strlen(s));
}

static void buf_printf(st_buf *b, const char *fmt, ...) DF_PRINTF(2, 3);
static void buf_printf(st_buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

// JSON string literal (bytes >= 0x80 pass through: names are UTF-8).
static void buf_json_str(st_buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"') buf_put(b, "\\\"", 2);
        else if (*p == '\\') buf_put(b, "\\\\", 2);
        else if (*p < 0x20) buf_printf(b, "\\u%04x", *p);
        else buf_put(b, (const char *)p, 1);
    }
    buf_put(b, "\"", 1);
}

// Official layout order: dtype size descending, then name.
static int cmp_wtensor(const void *a, const void *b) {
    const st_wtensor *x = *(const st_wtensor *const *)a;
    const st_wtensor *y = *(const st_wtensor *const *)b;
    size_t sx = df_dtype_size(x->dtype), sy = df_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t r = write(fd, c, chunk);
        if (r < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        if (r == 0) {
            errno = EIO;
            return 0;
        }
        c += r;
        n -= (size_t)r;
    }
    return 1;
}

df_status df_st_write(df_st_writer *w, const char *path) {
    DF_FAIL_IF(!w || !path, DF_ERR_ARG, "writer or path is NULL");
    const st_wtensor **order = malloc((w->count ? (size_t)w->count : 1) * sizeof *order);
    DF_FAIL_IF(!order, DF_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < w->count; i++) order[i] = &w->t[i];
    qsort(order, (size_t)w->count, sizeof *order, cmp_wtensor);

    // Header JSON.
    st_buf b = {0};
    buf_puts(&b, "{");
    int first = 1;
    if (w->nmeta) {
        buf_puts(&b, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            if (i) buf_puts(&b, ",");
            buf_json_str(&b, w->meta[2 * i]);
            buf_puts(&b, ":");
            buf_json_str(&b, w->meta[2 * i + 1]);
        }
        buf_puts(&b, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->count; i++) {
        const st_wtensor *t = order[i];
        if (!first) buf_puts(&b, ",");
        first = 0;
        buf_json_str(&b, t->name);
        buf_printf(&b, ":{\"dtype\":\"%s\",\"shape\":[", df_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) buf_printf(&b, d ? ",%" PRId64 : "%" PRId64, t->shape[d]);
        buf_printf(&b, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    buf_puts(&b, "}");
    while (!b.oom && b.len % 8 != 0) buf_puts(&b, " ");
    if (b.oom) {
        free(b.p);
        free(order);
        return DF_ERROR(DF_ERR_NOMEM, "%s: out of memory building the header", path);
    }

    // PATH.tmp.<pid>, then fsync + rename.
    size_t tl = strlen(path) + 32;
    char *tmp = malloc(tl);
    if (!tmp) {
        free(b.p);
        free(order);
        return DF_ERROR(DF_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    df_status st = DF_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        st = DF_ERROR(DF_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp,
                      strerror(errno));
        goto done;
    }
    unsigned char le[8];
    uint64_t n = b.len;
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(n >> (8 * i));
    int ok = write_all(fd, le, 8) && write_all(fd, b.p, b.len);
    for (int i = 0; ok && i < w->count; i++) {
        if (order[i]->nbytes) ok = write_all(fd, order[i]->data, order[i]->nbytes);
    }
    if (!ok) {
        st = DF_ERROR(DF_ERR_IO, "%s: write to %s failed: %s", path, tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto done;
    }
    if (fsync(fd) != 0) {
        st = DF_ERROR(DF_ERR_IO, "%s: fsync of %s failed: %s", path, tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto done;
    }
    if (close(fd) != 0) {
        st = DF_ERROR(DF_ERR_IO, "%s: close of %s failed: %s", path, tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = DF_ERROR(DF_ERR_IO, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
done:
    free(tmp);
    free(b.p);
    free(order);
    return st;
}

size_t df_st_release_pages(const df_st_file *f, const void *p, size_t n) {
    if (!f || !f->map || f->map_size == 0) return 0;
    uintptr_t m0 = (uintptr_t)f->map, m1 = m0 + f->map_size;
    uintptr_t a = p ? (uintptr_t)p : m0, b = p ? a + n : m1;
    if (a < m0) a = m0;
    if (b > m1) b = m1;
    if (a >= b) return 0;
    const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    a &= ~(pg - 1); // the mapping starts page-aligned: rounding outward stays inside it
    b = (b + pg - 1) & ~(pg - 1);
    if (b > ((m1 + pg - 1) & ~(pg - 1))) b = (m1 + pg - 1) & ~(pg - 1);
    if (madvise((void *)a, (size_t)(b - a), MADV_DONTNEED) != 0) return 0;
    return (size_t)(b - a);
}
