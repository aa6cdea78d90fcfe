// config.json helpers on cJSON: load + parse an object, and typed optional fields. Every error
// names the file (or label) and the key. Used by src/model/ (CLIP, VAE, UNet configs).
// src/sched/ may include only core (docs/design.md) and keeps its own getters in sched_json.c;
// the whole-file read both use is core/textfile.h.
#ifndef DF_IO_JSON_UTIL_H
#define DF_IO_JSON_UTIL_H

#include "core/error.h"

#include <cjson/cJSON.h>

#include <stddef.h>

// Largest |value| df_json_is_int accepts; df_json_int's range for "any integer".
#define DF_JSON_INT_MAX 999999999

// Parses TEXT as a JSON object (*out: delete with cJSON_Delete). Error "<label>: not a JSON
// object" (DF_ERR_FORMAT) for invalid JSON or another top-level type.
df_status df_json_parse_object(const char *text, const char *label, cJSON **out);

// Reads PATH (at most max_bytes) and parses it as a JSON object; errors name PATH.
df_status df_json_load_object(const char *path, size_t max_bytes, cJSON **out);

// A number with an integer value, |v| <= DF_JSON_INT_MAX.
int df_json_is_int(const cJSON *it);

// Optional fields of OBJ: an absent or null KEY keeps *out; a present one of the wrong type (or
// out of range) fails with DF_ERR_FORMAT "<label>: "<key>" must be ...".
df_status df_json_int(const cJSON *obj, const char *label, const char *key, int lo, int hi,
                      int *out);
df_status df_json_num(const cJSON *obj, const char *label, const char *key, double *out);
df_status df_json_bool(const cJSON *obj, const char *label, const char *key, int *out);
// String: absent keeps *out, null sets it to NULL. *out points into OBJ.
df_status df_json_str(const cJSON *obj, const char *label, const char *key, const char **out);

#endif // DF_IO_JSON_UTIL_H
