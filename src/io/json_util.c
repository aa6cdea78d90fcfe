// config.json helpers (see json_util.h).
#include "io/json_util.h"

#include "core/textfile.h"

#include <math.h>
#include <stdlib.h>

df_status df_json_parse_object(const char *text, const char *label, cJSON **out) {
    DF_FAIL_IF(!text || !out, DF_ERR_ARG, "NULL argument");
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        *out = NULL;
        return DF_ERROR(DF_ERR_FORMAT, "%s: not a JSON object", label);
    }
    *out = root;
    return DF_OK;
}

df_status df_json_load_object(const char *path, size_t max_bytes, cJSON **out) {
    DF_FAIL_IF(!path || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    char *text = NULL;
    DF_TRY(df_read_text_file(path, max_bytes, 0, &text, NULL));
    df_status st = df_json_parse_object(text, path, out);
    free(text);
    return st;
}

int df_json_is_int(const cJSON *it) {
    return cJSON_IsNumber(it) && it->valuedouble == floor(it->valuedouble) &&
           fabs(it->valuedouble) <= DF_JSON_INT_MAX;
}

// The item of KEY, or NULL when absent or null.
static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(it) ? NULL : it;
}

df_status df_json_int(const cJSON *obj, const char *label, const char *key, int lo, int hi,
                      int *out) {
    const cJSON *it = field(obj, key);
    if (!it) return DF_OK;
    if (!df_json_is_int(it) || it->valuedouble < lo || it->valuedouble > hi) {
        if (lo <= -DF_JSON_INT_MAX && hi >= DF_JSON_INT_MAX)
            return DF_ERROR(DF_ERR_FORMAT, "%s: \"%s\" must be an integer", label, key);
        return DF_ERROR(DF_ERR_FORMAT, "%s: \"%s\" must be an integer in [%d, %d]", label, key,
                        lo, hi);
    }
    *out = (int)it->valuedouble;
    return DF_OK;
}

df_status df_json_num(const cJSON *obj, const char *label, const char *key, double *out) {
    const cJSON *it = field(obj, key);
    if (!it) return DF_OK;
    DF_FAIL_IF(!cJSON_IsNumber(it), DF_ERR_FORMAT, "%s: \"%s\" must be a number", label, key);
    *out = it->valuedouble;
    return DF_OK;
}

df_status df_json_bool(const cJSON *obj, const char *label, const char *key, int *out) {
    const cJSON *it = field(obj, key);
    if (!it) return DF_OK;
    DF_FAIL_IF(!cJSON_IsBool(it), DF_ERR_FORMAT, "%s: \"%s\" must be true or false", label, key);
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return DF_OK;
}

df_status df_json_str(const cJSON *obj, const char *label, const char *key, const char **out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return DF_OK;
    if (cJSON_IsNull(it)) {
        *out = NULL;
        return DF_OK;
    }
    DF_FAIL_IF(!cJSON_IsString(it), DF_ERR_FORMAT, "%s: \"%s\" must be a string or null", label,
               key);
    *out = it->valuestring;
    return DF_OK;
}
