// Caption lists, shards and output names of batch generation (see pipeline.h).
#include "distrifuse/pipeline.h"

#include "core/core.h"
#include "core/textfile.h"
#include "io/image_png.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DF_PROMPT_FILE_MAX ((size_t)256 << 20) // bytes

struct df_prompt_list {
    int n, cap;
    char **items;
};

int df_prompt_list_count(const df_prompt_list *l) { return l ? l->n : 0; }

const char *df_prompt_list_get(const df_prompt_list *l, int i) {
    return l && i >= 0 && i < l->n ? l->items[i] : NULL;
}

void df_prompt_list_free(df_prompt_list *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->items[i]);
    free(l->items);
    free(l);
}

static df_status list_add(df_prompt_list *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **it = realloc(l->items, (size_t)cap * sizeof *it);
        DF_FAIL_IF(!it, DF_ERR_NOMEM, "out of memory (caption list)");
        l->items = it;
        l->cap = cap;
    }
    char *c = malloc(len + 1);
    DF_FAIL_IF(!c, DF_ERR_NOMEM, "out of memory (caption list)");
    memcpy(c, s, len);
    c[len] = 0;
    l->items[l->n++] = c;
    return DF_OK;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// 1-based line and column of byte offset `off` (for JSON errors).
static void line_col(const char *text, size_t off, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static df_status parse_json(const char *text, size_t len, const char *label,
                            df_prompt_list *l) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root && end) { // only white space may follow the value
        while (end < text + len && is_blank(*end)) end++;
        if (end < text + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        const char *e = cJSON_GetErrorPtr();
        if (!end && e && e >= text && e <= text + len) off = (size_t)(e - text);
        int line, col;
        line_col(text, off, &line, &col);
        return DF_ERROR(DF_ERR_FORMAT,
                        "%s: not valid JSON (error at line %d, column %d); a caption list is "
                        "a JSON array of strings, a JSON object of strings, or one caption "
                        "per line",
                        label, line, col);
    }
    df_status st = DF_OK;
    if (!cJSON_IsArray(root) && !cJSON_IsObject(root)) {
        st = DF_ERROR(DF_ERR_FORMAT, "%s: JSON must be an array or an object of strings", label);
    } else {
        int k = 0;
        for (const cJSON *it = root->child; it && st == DF_OK; it = it->next, k++) {
            if (!cJSON_IsString(it) || !it->valuestring) {
                if (cJSON_IsArray(root))
                    st = DF_ERROR(DF_ERR_FORMAT, "%s: item %d of the JSON array is not a string",
                                  label, k);
                else
                    st = DF_ERROR(DF_ERR_FORMAT, "%s: the value of key '%s' is not a string",
                                  label, it->string ? it->string : "?");
                break;
            }
            st = list_add(l, it->valuestring, strlen(it->valuestring));
        }
        if (st == DF_OK && l->n == 0)
            st = DF_ERROR(DF_ERR_FORMAT, "%s: the JSON %s holds no captions", label,
                          cJSON_IsArray(root) ? "array" : "object");
    }
    cJSON_Delete(root);
    return st;
}

static df_status parse_lines(const char *text, size_t len, const char *label,
                             df_prompt_list *l) {
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n') j++;
        size_t e = j;
        if (e > i && text[e - 1] == '\r') e--;
        int blank = 1;
        for (size_t k = i; k < e; k++)
            if (!is_blank(text[k])) blank = 0;
        if (!blank) DF_TRY(list_add(l, text + i, e - i));
        i = j + 1;
    }
    DF_FAIL_IF(l->n == 0, DF_ERR_FORMAT, "%s: no captions (the file is empty or blank)", label);
    return DF_OK;
}

df_status df_prompt_list_parse(const char *text, size_t len, const char *label,
                               df_prompt_list **out) {
    DF_FAIL_IF(!out || (!text && len), DF_ERR_ARG, "NULL argument");
    *out = NULL;
    if (!label) label = "caption list";
    if (!text) text = "";
    DF_FAIL_IF(memchr(text, 0, len) != NULL, DF_ERR_FORMAT,
               "%s: contains a NUL byte (not a text file)", label);
    if (len >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF) {
        text += 3;
        len -= 3;
    }
    df_prompt_list *l = calloc(1, sizeof *l);
    DF_FAIL_IF(!l, DF_ERR_NOMEM, "out of memory (caption list)");
    size_t k = 0;
    while (k < len && is_blank(text[k])) k++;
    df_status st = k < len && (text[k] == '[' || text[k] == '{')
                       ? parse_json(text, len, label, l)
                       : parse_lines(text, len, label, l);
    if (st != DF_OK) {
        df_prompt_list_free(l);
        return st;
    }
    *out = l;
    return DF_OK;
}

df_status df_prompt_list_load(const char *path, df_prompt_list **out) {
    DF_FAIL_IF(!path || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    DF_TRY(df_read_text_file(path, DF_PROMPT_FILE_MAX, 0, &text, &len));
    df_status st = df_prompt_list_parse(text, len, path, out);
    free(text);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Shards and names

void df_batch_shard(int n, int k, int parts, int *begin, int *end) {
    if (n < 0) n = 0;
    if (parts < 1) parts = 1;
    long long chunk = ((long long)n + parts - 1) / parts;
    long long b = (long long)k * chunk, e = b + chunk;
    if (b > n) b = n;
    if (e > n) e = n;
    if (b < 0) b = 0;
    if (e < b) e = b;
    *begin = (int)b;
    *end = (int)e;
}

void df_batch_dir_path(const char *dir, int i, char *buf, size_t cap) {
    size_t n = strlen(dir);
    int slash = n > 0 && dir[n - 1] == '/';
    snprintf(buf, cap, "%s%s%04d.png", dir, slash ? "" : "/", i);
}

void df_batch_output_path(const char *output, int i, char *buf, size_t cap) {
    const char *name = strrchr(output, '/');
    name = name ? name + 1 : output;
    const char *dot = strrchr(name, '.');
    int base = dot && dot != name ? (int)(dot - output) : (int)strlen(output);
    if (i == 0) snprintf(buf, cap, "%.*s.png", base, output);
    else snprintf(buf, cap, "%.*s_%d.png", base, output, i + 1);
}

int df_image_png_complete(const char *path, const char *parameters) {
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    enum { CAP = 16384 };
    char *text = malloc(CAP);
    if (!text) return 0;
    text[0] = 0;
    df_status st = df_png_read(path, &rgb, &w, &h, "parameters", text, CAP);
    df_free(rgb);
    df_clear_error();
    int ok = st == DF_OK && w > 0 && h > 0 && (!parameters || strcmp(text, parameters) == 0);
    free(text);
    return ok;
}
