// Small text files (configs, vocabularies, manifests): whole-file read and the non-JSON tokens
// Python's json module writes. Plain C; the JSON parsing itself lives with each user (cJSON).
#ifndef DF_CORE_TEXTFILE_H
#define DF_CORE_TEXTFILE_H

#include "core/error.h"

#include <stddef.h>

// Reads the whole file PATH into a malloc'ed, NUL-terminated buffer *out (*len bytes without
// the NUL; len may be NULL). A file larger than max_bytes fails with DF_ERR_FORMAT. With
// `optional`, a missing file (ENOENT) gives DF_OK and *out NULL. Errors name the path.
df_status df_read_text_file(const char *path, size_t max_bytes, int optional, char **out,
                            size_t *len);

// Python's json module writes the non-JSON tokens Infinity / -Infinity / NaN (diffusers saves
// DPMSolverMultistepScheduler's lambda_min_clipped as -Infinity). Returns a malloc'ed copy of the
// JSON text IN with them rewritten outside strings as 1e999 (parses as inf) / null; NULL when out
// of memory.
char *df_json_from_python(const char *in);

#endif // DF_CORE_TEXTFILE_H
