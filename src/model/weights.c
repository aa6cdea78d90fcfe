// Model weights table: diffusers names -> views of mmapped safetensors tensors (weights.h).
//
// A table is an array of entries (name + df_st_tensor view) with an open-addressing hash index.
// Views borrow the file mapping; only tensors that must be rearranged (the transposed OpenCLIP
// text projection) own their data.
#include "model/weights.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct wentry {
    char *name;          // owned copy (t.name points here)
    df_st_tensor t;      // view
    void *owned;         // data owned by the table or NULL
    int used;            // fetched by df_weights_get
} wentry;

struct df_weights {
    char *label;         // file path (+ component) for messages
    df_st_file *file;    // owned file (df_weights_open) or NULL
    const df_st_file *src; // the file the views point into (owned or borrowed) or NULL
    wentry *e;           // [count]
    int count, cap;
    int *index;          // [index_cap] entry index + 1, 0 = empty
    int index_cap;       // power of two
};

// ---------------------------------------------------------------------------------------------
// Hash index

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int index_lookup(const df_weights *w, const char *name) {
    if (w->index_cap == 0) return -1;
    size_t mask = (size_t)w->index_cap - 1;
    for (size_t i = hash_str(name) & mask;; i = (i + 1) & mask) {
        int v = w->index[i];
        if (v == 0) return -1;
        if (strcmp(w->e[v - 1].name, name) == 0) return v - 1;
    }
}

static df_status index_rebuild(df_weights *w, int cap) {
    int *idx = calloc((size_t)cap, sizeof(int));
    DF_FAIL_IF(!idx, DF_ERR_NOMEM, "out of memory (weights index of %d slots)", cap);
    free(w->index);
    w->index = idx;
    w->index_cap = cap;
    size_t mask = (size_t)cap - 1;
    for (int k = 0; k < w->count; k++) {
        size_t i = hash_str(w->e[k].name) & mask;
        while (idx[i]) i = (i + 1) & mask;
        idx[i] = k + 1;
    }
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Building

df_status df_i_weights_create(const char *label, df_weights **out) {
    *out = NULL;
    df_weights *w = calloc(1, sizeof *w);
    DF_FAIL_IF(!w, DF_ERR_NOMEM, "out of memory");
    w->label = strdup(label ? label : "(weights)");
    if (!w->label) {
        free(w);
        return DF_ERROR(DF_ERR_NOMEM, "out of memory");
    }
    *out = w;
    return DF_OK;
}

// Appends an entry that takes ownership of `owned` (may be NULL) in every case.
static df_status add_entry(df_weights *w, const char *name, const df_st_tensor *view,
                           void *owned) {
    if (index_lookup(w, name) >= 0) {
        df_free(owned);
        return DF_ERROR(DF_ERR_FORMAT, "%s: duplicate tensor name '%s'", w->label, name);
    }
    if (w->count == w->cap) {
        int ncap = w->cap ? 2 * w->cap : 256;
        wentry *ne = realloc(w->e, (size_t)ncap * sizeof *ne);
        if (!ne) {
            df_free(owned);
            return DF_ERROR(DF_ERR_NOMEM, "out of memory (weights table)");
        }
        w->e = ne;
        w->cap = ncap;
    }
    wentry *en = &w->e[w->count];
    memset(en, 0, sizeof *en);
    en->name = strdup(name);
    if (!en->name) {
        df_free(owned);
        return DF_ERROR(DF_ERR_NOMEM, "out of memory");
    }
    en->t = *view;
    en->t.name = en->name;
    en->owned = owned;
    w->count++;
    if (2 * w->count > w->index_cap) {
        int cap = w->index_cap ? w->index_cap : 512;
        while (2 * w->count > cap) cap *= 2;
        DF_TRY(index_rebuild(w, cap));
    } else {
        size_t mask = (size_t)w->index_cap - 1;
        size_t i = hash_str(en->name) & mask;
        while (w->index[i]) i = (i + 1) & mask;
        w->index[i] = w->count;
    }
    return DF_OK;
}

df_status df_i_weights_add(df_weights *w, const char *name, const df_st_tensor *src) {
    return add_entry(w, name, src, NULL);
}

static size_t numel_of(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || !df_i_mul_size(n, (size_t)shape[d], &n)) return SIZE_MAX;
    }
    return n;
}

df_status df_i_weights_add_view(df_weights *w, const char *name, const df_st_tensor *src,
                                size_t byte_offset, int ndim, const int64_t *shape) {
    DF_FAIL_IF(ndim < 0 || ndim > DF_ST_MAX_DIMS, DF_ERR_ARG, "view '%s': bad ndim %d", name,
               ndim);
    size_t n = numel_of(ndim, shape), nb;
    DF_FAIL_IF(n == SIZE_MAX || !df_i_mul_size(n, df_dtype_size(src->dtype), &nb), DF_ERR_ARG,
               "view '%s' of '%s': shape overflows", name, src->name);
    DF_FAIL_IF(byte_offset > src->nbytes || nb > src->nbytes - byte_offset, DF_ERR_ARG,
               "view '%s' of '%s': bytes [%zu, %zu) outside the tensor (%zu bytes)", name,
               src->name, byte_offset, byte_offset + nb, src->nbytes);
    df_st_tensor v = *src;
    v.ndim = ndim;
    for (int d = 0; d < DF_ST_MAX_DIMS; d++) v.shape[d] = d < ndim ? shape[d] : 0;
    v.numel = n;
    v.nbytes = nb;
    v.data = (const unsigned char *)src->data + byte_offset;
    return add_entry(w, name, &v, NULL);
}

df_status df_i_weights_add_alias(df_weights *w, const char *name, const df_st_tensor *src,
                                 size_t row_begin, size_t rows) {
    DF_FAIL_IF(src->ndim < 1, DF_ERR_SHAPE, "alias '%s': '%s' is a scalar", name, src->name);
    DF_FAIL_IF(row_begin > (size_t)src->shape[0] || rows > (size_t)src->shape[0] - row_begin,
               DF_ERR_SHAPE, "alias '%s': rows [%zu, %zu) outside '%s' (%" PRId64 " rows)", name,
               row_begin, row_begin + rows, src->name, src->shape[0]);
    size_t row_bytes = src->shape[0] ? src->nbytes / (size_t)src->shape[0] : 0;
    int64_t shape[DF_ST_MAX_DIMS];
    memcpy(shape, src->shape, sizeof shape);
    shape[0] = (int64_t)rows;
    return df_i_weights_add_view(w, name, src, row_begin * row_bytes, src->ndim, shape);
}

df_status df_i_weights_add_owned(df_weights *w, const char *name, df_dtype dtype, int ndim,
                                 const int64_t *shape, void *data) {
    if (ndim < 0 || ndim > DF_ST_MAX_DIMS) {
        df_free(data);
        return DF_ERROR(DF_ERR_ARG, "owned tensor '%s': bad ndim %d", name, ndim);
    }
    df_st_tensor v;
    memset(&v, 0, sizeof v);
    v.dtype = dtype;
    v.ndim = ndim;
    for (int d = 0; d < ndim; d++) v.shape[d] = shape[d];
    v.numel = numel_of(ndim, shape);
    v.nbytes = v.numel * df_dtype_size(dtype);
    v.data = data;
    return add_entry(w, name, &v, data);
}

void df_weights_destroy(df_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->count; i++) {
        free(w->e[i].name);
        df_free(w->e[i].owned);
    }
    free(w->e);
    free(w->index);
    free(w->label);
    df_st_close(w->file);
    free(w);
}

// ---------------------------------------------------------------------------------------------
// Opening

df_status df_weights_open(const char *path, df_weights **out) {
    *out = NULL;
    df_st_file *f = NULL;
    DF_TRY(df_st_open(path, &f));
    df_weights *w = NULL;
    df_status st = df_i_weights_create(path, &w);
    if (st != DF_OK) {
        df_st_close(f);
        return st;
    }
    w->file = f;
    w->src = f;
    int n = df_st_count(f);
    for (int i = 0; i < n && st == DF_OK; i++) {
        const df_st_tensor *t = df_st_get(f, i);
        st = df_i_weights_add(w, t->name, t);
    }
    if (st != DF_OK) {
        df_weights_destroy(w);
        return st;
    }
    *out = w;
    return DF_OK;
}

df_status df_weights_open_dir(const char *dir, const char *component, df_weights **out) {
    static const char *const files[] = {
        "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
        "model.safetensors", "model.fp16.safetensors"};
    *out = NULL;
    char path[4096];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        int n = snprintf(path, sizeof path, "%s/%s/%s", dir, component, files[i]);
        DF_FAIL_IF(n < 0 || (size_t)n >= sizeof path, DF_ERR_ARG, "path too long: %s/%s", dir,
                   component);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) return df_weights_open(path, out);
    }
    return DF_ERROR(DF_ERR_IO,
                    "%s/%s: no weights file (tried diffusion_pytorch_model[.fp16].safetensors, "
                    "model[.fp16].safetensors)",
                    dir, component);
}

// OpenCLIP tensors of text_encoder_2 that are not 1:1 renames. Returns 1 if handled (or *st set).
static int single_special_clip2(df_weights *w, const df_st_tensor *t, df_status *st) {
    static const char pre[] = "conditioner.embedders.1.model.";
    const size_t np = sizeof pre - 1;
    if (strncmp(t->name, pre, np) != 0) return 0;
    const char *rest = t->name + np;
    char name[512];
    if (strcmp(rest, "text_projection") == 0) {
        if (t->ndim != 2) {
            *st = DF_ERROR(DF_ERR_SHAPE, "%s: '%s' has %d dims, expected 2", w->label, t->name,
                           t->ndim);
            return 1;
        }
        size_t r = (size_t)t->shape[0], c = (size_t)t->shape[1], es = df_dtype_size(t->dtype);
        unsigned char *dst = df_malloc(t->nbytes ? t->nbytes : 1);
        if (!dst) {
            *st = DF_ERROR(DF_ERR_NOMEM, "out of memory (%s)", t->name);
            return 1;
        }
        const unsigned char *src = t->data;
        for (size_t i = 0; i < r; i++) // dst[j][i] = src[i][j]
            for (size_t j = 0; j < c; j++) memcpy(dst + (j * r + i) * es, src + (i * c + j) * es, es);
        int64_t shape[2] = {(int64_t)c, (int64_t)r};
        *st = df_i_weights_add_owned(w, "text_projection.weight", t->dtype, 2, shape, dst);
        return 1;
    }
    int layer, off = 0;
    char kind[16];
    if (sscanf(rest, "transformer.resblocks.%d.attn.in_proj_%15[a-z]%n", &layer, kind, &off) == 2 &&
        rest[off] == '\0' && (strcmp(kind, "weight") == 0 || strcmp(kind, "bias") == 0)) {
        if (t->ndim < 1 || t->shape[0] % 3 != 0) {
            *st = DF_ERROR(DF_ERR_SHAPE, "%s: '%s' first dim %" PRId64 " is not 3*C", w->label,
                           t->name, t->ndim ? t->shape[0] : 0);
            return 1;
        }
        size_t c = (size_t)t->shape[0] / 3;
        static const char *const qkv[3] = {"q", "k", "v"};
        *st = DF_OK;
        for (int j = 0; j < 3 && *st == DF_OK; j++) {
            snprintf(name, sizeof name, "text_model.encoder.layers.%d.self_attn.%s_proj.%s", layer,
                     qkv[j], kind);
            *st = df_i_weights_add_alias(w, name, t, (size_t)j * c, c);
        }
        return 1;
    }
    return 0;
}

df_status df_weights_from_single(const df_st_file *f, const char *component, df_weights **out) {
    *out = NULL;
    int which = -1; // 0 unet, 1 vae, 2 text_encoder, 3 text_encoder_2
    if (strcmp(component, "unet") == 0) which = 0;
    else if (strcmp(component, "vae") == 0) which = 1;
    else if (strcmp(component, "text_encoder") == 0) which = 2;
    else if (strcmp(component, "text_encoder_2") == 0) which = 3;
    DF_FAIL_IF(which < 0, DF_ERR_ARG,
               "unknown component '%s' (expected unet, vae, text_encoder or text_encoder_2)",
               component);
    char label[4200];
    snprintf(label, sizeof label, "%s (%s)", df_st_path(f), component);
    df_weights *w = NULL;
    DF_TRY(df_i_weights_create(label, &w));
    w->src = f;
    df_status st = DF_OK;
    char name[512];
    int n = df_st_count(f);
    const int layers = which == 0 ? df_i_ldm_unet_layers(f) : 0;
    for (int i = 0; i < n && st == DF_OK; i++) {
        const df_st_tensor *t = df_st_get(f, i);
        if (strncmp(t->name, "model_ema.", 10) == 0) continue;
        if (which == 3 && single_special_clip2(w, t, &st)) continue;
        int hit = 0;
        switch (which) {
        case 0: hit = df_i_ldm_map_unet(layers, t->name, name, sizeof name); break;
        case 1: hit = df_i_ldm_map_vae(t->name, name, sizeof name); break;
        case 2: hit = df_i_ldm_map_clip(t->name, 0, name, sizeof name); break;
        default: hit = df_i_ldm_map_clip(t->name, 1, name, sizeof name); break;
        }
        if (hit) st = df_i_weights_add(w, name, t);
    }
    if (st == DF_OK && w->count == 0)
        st = DF_ERROR(DF_ERR_FORMAT, "%s: no tensors for component '%s' in this checkpoint",
                      df_st_path(f), component);
    if (st != DF_OK) {
        df_weights_destroy(w);
        return st;
    }
    *out = w;
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Lookup

const df_st_tensor *df_weights_find(const df_weights *w, const char *name) {
    int i = index_lookup(w, name);
    return i < 0 ? NULL : &w->e[i].t;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int d = 0; d < ndim && k < cap; d++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, d ? "," : "", shape[d]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

// Number of dims after dropping trailing 1s (keeps at least 1 dim for non-scalars).
static int squeezed_ndim(int ndim, const int64_t *shape) {
    while (ndim > 1 && shape[ndim - 1] == 1) ndim--;
    return ndim;
}

df_status df_weights_get(df_weights *w, const char *name, int ndim, const int64_t *shape,
                         const df_st_tensor **out) {
    *out = NULL;
    int i = index_lookup(w, name);
    DF_FAIL_IF(i < 0, DF_ERR_FORMAT, "missing tensor '%s' in %s", name, w->label);
    wentry *en = &w->e[i];
    const df_st_tensor *t = &en->t;
    DF_FAIL_IF(t->dtype != DF_DTYPE_F32 && t->dtype != DF_DTYPE_F16 && t->dtype != DF_DTYPE_BF16,
               DF_ERR_SHAPE, "tensor '%s' in %s has dtype %s, expected F32, F16 or BF16", name,
               w->label, df_dtype_name(t->dtype));
    if (ndim >= 0) {
        int a = squeezed_ndim(t->ndim, t->shape), b = squeezed_ndim(ndim, shape);
        int ok = a == b;
        for (int d = 0; ok && d < a; d++) ok = t->shape[d] == shape[d];
        if (!ok) {
            char got[160], want[160];
            format_shape(got, sizeof got, t->ndim, t->shape);
            format_shape(want, sizeof want, ndim, shape);
            return DF_ERROR(DF_ERR_SHAPE, "tensor '%s' has shape %s, expected %s (in %s)", name,
                            got, want, w->label);
        }
    }
    en->used = 1;
    *out = t;
    return DF_OK;
}

int df_weights_unused(const df_weights *w, const char *prefix, char *msg, size_t cap) {
    int n = 0;
    size_t k = 0, plen = prefix ? strlen(prefix) : 0;
    if (msg && cap) msg[0] = '\0';
    for (int i = 0; i < w->count; i++) {
        if (w->e[i].used) continue;
        if (plen && strncmp(w->e[i].name, prefix, plen) != 0) continue;
        if (msg && n < 8 && k + 1 < cap) {
            int m = snprintf(msg + k, cap - k, "%s'%s'", n ? ", " : "", w->e[i].name);
            if (m > 0) k = k + (size_t)m < cap ? k + (size_t)m : cap - 1;
        }
        n++;
    }
    if (msg && n > 8 && k + 1 < cap) snprintf(msg + k, cap - k, ", ... (%d in all)", n);
    return n;
}

const char *df_weights_path(const df_weights *w) {
    return w->label;
}

int df_weights_count(const df_weights *w) {
    return w->count;
}

const df_st_tensor *df_weights_at(const df_weights *w, int i) {
    return (i >= 0 && i < w->count) ? &w->e[i].t : NULL;
}

size_t df_weights_release_pages(const df_weights *w) {
    if (!w || !w->src) return 0;
    size_t n = 0;
    for (int k = 0; k < w->count; k++)
        if (!w->e[k].owned) n += df_st_release_pages(w->src, w->e[k].t.data, w->e[k].t.nbytes);
    return n;
}
