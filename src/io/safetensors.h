// safetensors reader (mmap) and writer.
//
// Reader: the file is mmapped read-only; tensor data pointers stay valid until df_st_close().
// Every header field is validated (header length bounds, JSON shape, dtype, shape x dtype size ==
// byte range, offsets inside the file, non-overlapping regions, unique names). Errors name the
// file and the problem. Data pointers may be unaligned: use memcpy / df_convert_to_f32.
//
// Writer: collects tensors (copying nothing until df_st_write), writes the official layout
// (header padded with spaces to a multiple of 8, data packed) to PATH.tmp.<pid> and renames it to
// PATH, so a failure never leaves a half-written file.
#ifndef DF_IO_SAFETENSORS_H
#define DF_IO_SAFETENSORS_H

#include "core/core.h"

#include <stddef.h>
#include <stdint.h>

#define DF_ST_MAX_DIMS 8

typedef struct df_st_tensor {
    const char *name;               // owned by the file object
    df_dtype dtype;
    int ndim;
    int64_t shape[DF_ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const void *data;               // into the mapping; possibly unaligned
} df_st_tensor;

typedef struct df_st_file df_st_file;

// Opens and validates PATH. *out is NULL on failure.
// DF_ERR_IO (open/stat/mmap), DF_ERR_FORMAT (anything wrong in the header or layout).
df_status df_st_open(const char *path, df_st_file **out);
void df_st_close(df_st_file *f); // accepts NULL

const char *df_st_path(const df_st_file *f);
int df_st_count(const df_st_file *f);
const df_st_tensor *df_st_get(const df_st_file *f, int i);         // 0 <= i < count
const df_st_tensor *df_st_find(const df_st_file *f, const char *name); // NULL if absent
// Value of a __metadata__ string entry, or NULL.
const char *df_st_metadata(const df_st_file *f, const char *key);

// Reads tensor NAME as f32 into dst (capacity n floats); checks the element count and that the
// dtype is F32/F16/BF16. Error messages name the tensor and the file.
// Drops the resident pages of the mapping that overlap [p, p + n) (p NULL: the whole mapping)
// with madvise(MADV_DONTNEED): RSS goes down, the mapping stays valid and a later read faults
// the pages back in from the page cache (the mapping is read-only, so nothing is lost). Ranges
// outside the mapping are ignored. Returns the bytes advised.
size_t df_st_release_pages(const df_st_file *f, const void *p, size_t n);
df_status df_st_read_f32(const df_st_file *f, const char *name, float *dst, size_t n);

// ---------------------------------------------------------------------------------------------
// Writer
typedef struct df_st_writer df_st_writer;

df_status df_st_writer_create(df_st_writer **out);
void df_st_writer_destroy(df_st_writer *w); // accepts NULL
// Adds a tensor; data is borrowed until df_st_write returns (nbytes = numel * dtype size).
df_status df_st_writer_add(df_st_writer *w, const char *name, df_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);
// Optional __metadata__ string pair (copied).
df_status df_st_writer_meta(df_st_writer *w, const char *key, const char *value);
// Writes atomically (tmp + rename).
df_status df_st_write(df_st_writer *w, const char *path);

#endif // DF_IO_SAFETENSORS_H
