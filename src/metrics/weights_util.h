// Shared helper of the metric-network loaders: a tensor of a safetensors file as f32 with its
// exact shape checked (internal to src/metrics).
#ifndef DF_METRICS_WEIGHTS_UTIL_H
#define DF_METRICS_WEIGHTS_UTIL_H

#include "core/core.h"
#include "io/safetensors.h"

#include <stdint.h>

// Reads tensor `name` (or, if absent and alt != NULL, `alt`) of shape dims[0..ndim) as f32 into
// a malloc'ed buffer *out. Errors name the tensor, the file and the shapes.
df_status df_metrics_read_tensor(const df_st_file *f, const char *name, const char *alt,
                                 int ndim, const int64_t *dims, float **out);

#endif // DF_METRICS_WEIGHTS_UTIL_H
