#include "metrics/weights_util.h"

#include <stdio.h>
#include <string.h>

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *dims) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

df_status df_metrics_read_tensor(const df_st_file *f, const char *name, const char *alt,
                                 int ndim, const int64_t *dims, float **out) {
    *out = NULL;
    const df_st_tensor *t = df_st_find(f, name);
    const char *used = name;
    if (!t && alt) t = df_st_find(f, alt), used = alt;
    DF_FAIL_IF(!t, DF_ERR_FORMAT, "%s: missing tensor '%s' (is this the right weights file?)",
               df_st_path(f), name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == dims[i];
    if (!ok) {
        char want[128], got[128];
        shape_str(want, sizeof want, ndim, dims);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return DF_ERROR(DF_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", df_st_path(f),
                        used, got, want);
    }
    float *p = df_malloc(t->numel * sizeof(float) + 4);
    DF_FAIL_IF(!p, DF_ERR_NOMEM, "tensor '%s'", used);
    const df_status st = df_st_read_f32(f, used, p, t->numel);
    if (st != DF_OK) {
        df_free(p);
        return st;
    }
    *out = p;
    return DF_OK;
}
