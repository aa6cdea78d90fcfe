// CLIP BPE tokenizer (transformers' slow CLIPTokenizer without ftfy). See tokenizer.h.
#include "text/tokenizer.h"

#include "text/unicode_tables.h"

#include "core/textfile.h"

#include <cjson/cJSON.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MERGES (49152 - 256 - 2) // transformers reads merges.txt lines 1 .. 48894
#define MAX_SPECIALS 64

// ---------------------------------------------------------------------------------------------
// growable arrays
typedef struct {
    uint32_t *v;
    size_t n, cap;
} u32vec;

typedef struct {
    int32_t *v;
    size_t n, cap;
} i32vec;

static int grow(void **v, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *p = realloc(*v, c * elem);
    if (!p) return 0;
    *v = p;
    *cap = c;
    return 1;
}

static int u32_push(u32vec *a, uint32_t x) {
    if (!grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v)) return 0;
    a->v[a->n++] = x;
    return 1;
}

static int i32_push(i32vec *a, int32_t x) {
    if (!grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v)) return 0;
    a->v[a->n++] = x;
    return 1;
}

#define PUSH_OR_NOMEM(expr)                                                                    \
    do {                                                                                       \
        if (!(expr)) return DF_ERROR(DF_ERR_NOMEM, "out of memory while tokenizing");         \
    } while (0)

// ---------------------------------------------------------------------------------------------
// the tokenizer object
struct df_tokenizer {
    // vocabulary: id -> string (offsets into arena), string -> id (open addressing)
    char *arena;
    size_t arena_len, arena_cap;
    uint32_t *tok_off; // [n_vocab], UINT32_MAX where an id is unused
    int n_vocab;
    int32_t *vmap; // [vmap_cap] ids, -1 empty
    size_t vmap_cap;
    // merges: (left id, right id) -> (rank, merged id)
    uint64_t *mkey; // [mcap], UINT64_MAX empty
    int32_t *mrank, *mres;
    size_t mcap;
    int n_merges;
    // base symbols of each byte, without and with "</w>"
    int32_t byte_id[256], byte_id_w[256];
    // added / special tokens split off the raw text before clean-up
    int n_special;
    char *special_str[MAX_SPECIALS];
    size_t special_len[MAX_SPECIALS];
    int32_t special_id[MAX_SPECIALS];
    int32_t bos, eos, pad;
    int32_t sot_vocab, eot_vocab; // vocab ids of the literal special strings (regex path)
};

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static const char *vocab_str(const df_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab || t->tok_off[id] == UINT32_MAX) return NULL;
    return t->arena + t->tok_off[id];
}

// id of the vocabulary string s[0..n), or -1
static int32_t vocab_find(const df_tokenizer *t, const char *s, size_t n) {
    const size_t mask = t->vmap_cap - 1;
    for (size_t i = (size_t)fnv1a(s, n) & mask;; i = (i + 1) & mask) {
        const int32_t id = t->vmap[i];
        if (id < 0) return -1;
        const char *v = t->arena + t->tok_off[id];
        if (strlen(v) == n && memcmp(v, s, n) == 0) return id;
    }
}

static int32_t vocab_find_cstr(const df_tokenizer *t, const char *s) {
    return vocab_find(t, s, strlen(s));
}

static void merge_insert(df_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t res) {
    const uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    const size_t mask = t->mcap - 1;
    for (size_t i = (size_t)mix64(key) & mask;; i = (i + 1) & mask) {
        if (t->mkey[i] == UINT64_MAX || t->mkey[i] == key) {
            if (t->mkey[i] == UINT64_MAX) t->n_merges++;
            t->mkey[i] = key; // a repeated pair keeps the later rank (Python dict semantics)
            t->mrank[i] = rank;
            t->mres[i] = res;
            return;
        }
    }
}

// rank of the pair (a, b) or INT32_MAX; *res receives the merged id
static int32_t merge_find(const df_tokenizer *t, int32_t a, int32_t b, int32_t *res) {
    const uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    const size_t mask = t->mcap - 1;
    for (size_t i = (size_t)mix64(key) & mask;; i = (i + 1) & mask) {
        if (t->mkey[i] == UINT64_MAX) return INT32_MAX;
        if (t->mkey[i] == key) {
            *res = t->mres[i];
            return t->mrank[i];
        }
    }
}

void df_tokenizer_destroy(df_tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->tok_off);
    free(t->vmap);
    free(t->mkey);
    free(t->mrank);
    free(t->mres);
    for (int i = 0; i < t->n_special; i++) free(t->special_str[i]);
    free(t);
}

int df_tokenizer_pad_id(const df_tokenizer *t) { return t->pad; }
int df_tokenizer_bos_id(const df_tokenizer *t) { return t->bos; }
int df_tokenizer_eos_id(const df_tokenizer *t) { return t->eos; }
int df_tokenizer_vocab_size(const df_tokenizer *t) { return t->n_vocab; }
const char *df_tokenizer_token(const df_tokenizer *t, int id) { return vocab_str(t, id); }

// ---------------------------------------------------------------------------------------------
// loading

// Reads and parses a JSON file. *out NULL with DF_OK if optional and absent.
static df_status parse_json_file(const char *path, int optional, cJSON **out) {
    *out = NULL;
    char *buf;
    size_t len;
    DF_TRY(df_read_text_file(path, SIZE_MAX, optional, &buf, &len));
    if (!buf) return DF_OK;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) {
        const size_t off = end ? (size_t)(end - buf) : 0;
        free(buf);
        return DF_ERROR(DF_ERR_FORMAT, "%s: invalid JSON near byte %zu", path, off);
    }
    free(buf);
    *out = j;
    return DF_OK;
}

static df_status arena_add(df_tokenizer *t, const char *s, size_t n, uint32_t *off) {
    if (t->arena_len + n + 1 > UINT32_MAX)
        return DF_ERROR(DF_ERR_FORMAT, "vocabulary strings exceed 4 GiB");
    if (!grow((void **)&t->arena, &t->arena_cap, t->arena_len + n + 1, 1))
        return DF_ERROR(DF_ERR_NOMEM, "out of memory loading the vocabulary");
    memcpy(t->arena + t->arena_len, s, n);
    t->arena[t->arena_len + n] = '\0';
    *off = (uint32_t)t->arena_len;
    t->arena_len += n + 1;
    return DF_OK;
}

static df_status load_vocab(df_tokenizer *t, const char *path) {
    cJSON *j;
    DF_TRY(parse_json_file(path, 0, &j));
    df_status st = DF_OK;
    if (!cJSON_IsObject(j)) {
        st = DF_ERROR(DF_ERR_FORMAT, "%s: expected a JSON object token -> id", path);
        goto done;
    }
    int count = 0, max_id = -1;
    for (cJSON *it = j->child; it; it = it->next) {
        const double v = it->valuedouble;
        if (!cJSON_IsNumber(it) || v < 0 || v > 16777216.0 || v != (double)(int)v || !it->string) {
            st = DF_ERROR(DF_ERR_FORMAT, "%s: entry \"%s\" is not a non-negative integer id",
                          path, it->string ? it->string : "?");
            goto done;
        }
        if ((int)v > max_id) max_id = (int)v;
        count++;
    }
    if (count == 0) {
        st = DF_ERROR(DF_ERR_FORMAT, "%s: empty vocabulary", path);
        goto done;
    }
    t->n_vocab = max_id + 1;
    t->tok_off = malloc((size_t)t->n_vocab * sizeof *t->tok_off);
    t->vmap_cap = 1;
    while (t->vmap_cap < (size_t)count * 2) t->vmap_cap *= 2;
    t->vmap = malloc(t->vmap_cap * sizeof *t->vmap);
    if (!t->tok_off || !t->vmap) {
        st = DF_ERROR(DF_ERR_NOMEM, "out of memory loading %s", path);
        goto done;
    }
    memset(t->tok_off, 0xff, (size_t)t->n_vocab * sizeof *t->tok_off);
    memset(t->vmap, 0xff, t->vmap_cap * sizeof *t->vmap);
    for (cJSON *it = j->child; it; it = it->next) {
        const int id = (int)it->valuedouble;
        const size_t n = strlen(it->string);
        if (t->tok_off[id] != UINT32_MAX) {
            st = DF_ERROR(DF_ERR_FORMAT, "%s: id %d used by \"%s\" and \"%s\"", path, id,
                          t->arena + t->tok_off[id], it->string);
            goto done;
        }
        if ((st = arena_add(t, it->string, n, &t->tok_off[id])) != DF_OK) goto done;
        const size_t mask = t->vmap_cap - 1;
        size_t i = (size_t)fnv1a(it->string, n) & mask;
        while (t->vmap[i] >= 0) {
            // JSON objects may repeat a key; cJSON keeps both, Python's json keeps the last
            if (strcmp(t->arena + t->tok_off[t->vmap[i]], it->string) == 0) break;
            i = (i + 1) & mask;
        }
        t->vmap[i] = id;
    }
done:
    cJSON_Delete(j);
    return st;
}

// bytes_to_unicode(): printable bytes map to themselves, the other 68 to U+0100.. in order.
static uint32_t byte_to_unicode(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        return (uint32_t)b;
    int k = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) k++;
    return 256u + (uint32_t)k;
}

static size_t utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static df_status load_merges(df_tokenizer *t, const char *path) {
    char *buf;
    size_t len;
    DF_TRY(df_read_text_file(path, SIZE_MAX, 0, &buf, &len));
    df_status st = DF_OK;
    t->mcap = 1;
    while (t->mcap < (size_t)MAX_MERGES * 2) t->mcap *= 2;
    t->mkey = malloc(t->mcap * sizeof *t->mkey);
    t->mrank = malloc(t->mcap * sizeof *t->mrank);
    t->mres = malloc(t->mcap * sizeof *t->mres);
    if (!t->mkey || !t->mrank || !t->mres) {
        free(buf);
        return DF_ERROR(DF_ERR_NOMEM, "out of memory loading %s", path);
    }
    memset(t->mkey, 0xff, t->mcap * sizeof *t->mkey);

    // Python: read().strip().split("\n")[1 : 48895], each line split on whitespace
    char *p = buf, *end = buf + len;
    while (p < end && (*p == ' ' || (*p >= '\t' && *p <= '\r'))) p++;
    while (end > p && (end[-1] == ' ' || (end[-1] >= '\t' && end[-1] <= '\r'))) end--;
    int line = 0;
    char joined[1024];
    while (p < end && line <= MAX_MERGES) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        if (line >= 1) {
            const char *tk[3];
            size_t tl[3];
            int nt = 0;
            for (char *q = p; q < le && nt < 3;) {
                while (q < le && (*q == ' ' || (*q >= '\t' && *q <= '\r'))) q++;
                if (q >= le) break;
                const char *s0 = q;
                while (q < le && !(*q == ' ' || (*q >= '\t' && *q <= '\r'))) q++;
                tk[nt] = s0;
                tl[nt] = (size_t)(q - s0);
                nt++;
            }
            if (nt != 2) {
                st = DF_ERROR(DF_ERR_FORMAT, "%s line %d: expected two symbols \"A B\"", path,
                              line + 1);
                break;
            }
            const int32_t a = vocab_find(t, tk[0], tl[0]);
            const int32_t b = vocab_find(t, tk[1], tl[1]);
            if (tl[0] + tl[1] >= sizeof joined) {
                st = DF_ERROR(DF_ERR_FORMAT, "%s line %d: symbols too long", path, line + 1);
                break;
            }
            memcpy(joined, tk[0], tl[0]);
            memcpy(joined + tl[0], tk[1], tl[1]);
            const int32_t r = vocab_find(t, joined, tl[0] + tl[1]);
            if (a < 0 || b < 0 || r < 0) {
                joined[tl[0] + tl[1]] = '\0';
                st = DF_ERROR(DF_ERR_FORMAT,
                              "%s line %d: merge \"%.*s %.*s\" -> \"%s\": %s not in vocab.json",
                              path, line + 1, (int)tl[0], tk[0], (int)tl[1], tk[1], joined,
                              a < 0 ? "left symbol" : b < 0 ? "right symbol" : "result");
                break;
            }
            merge_insert(t, a, b, line - 1, r);
        }
        line++;
        if (!nl) break;
        p = nl + 1;
    }
    free(buf);
    return st;
}

static df_status add_special(df_tokenizer *t, const char *content, int32_t id) {
    if (!content || !*content) return DF_OK;
    for (int i = 0; i < t->n_special; i++)
        if (strcmp(t->special_str[i], content) == 0) return DF_OK; // first registration wins
    if (t->n_special == MAX_SPECIALS)
        return DF_ERROR(DF_ERR_UNSUPPORTED, "more than %d added tokens", MAX_SPECIALS);
    char *s = strdup(content);
    if (!s) return DF_ERROR(DF_ERR_NOMEM, "out of memory");
    t->special_str[t->n_special] = s;
    t->special_len[t->n_special] = strlen(s);
    t->special_id[t->n_special] = id;
    t->n_special++;
    return DF_OK;
}

// "tok" or {"content": "tok", ...} -> content, NULL otherwise
static const char *token_content(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

// id of a special token: an added_tokens_decoder entry, else the vocabulary
static int32_t special_token_id(const df_tokenizer *t, const cJSON *added, const char *content) {
    for (const cJSON *it = added ? added->child : NULL; it; it = it->next) {
        const char *c = token_content(it);
        if (c && strcmp(c, content) == 0 && it->string) {
            char *e;
            const long id = strtol(it->string, &e, 10);
            if (*e == '\0' && id >= 0 && id <= INT32_MAX) return (int32_t)id;
        }
    }
    return vocab_find_cstr(t, content);
}

enum { SP_BOS, SP_EOS, SP_UNK, SP_PAD, SP_COUNT };
static const char *const sp_keys[SP_COUNT] = {"bos_token", "eos_token", "unk_token", "pad_token"};

static df_status load_config(df_tokenizer *t, const char *dir, int pad_override) {
    char path[4096];
    cJSON *cfg = NULL, *map = NULL;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    DF_TRY(parse_json_file(path, 1, &cfg));
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    df_status st = parse_json_file(path, 1, &map);
    if (st != DF_OK) {
        cJSON_Delete(cfg);
        return st;
    }
    const cJSON *added = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder") : NULL;
    if (added && !cJSON_IsObject(added)) added = NULL;

    // CLIPTokenizer defaults, then tokenizer_config.json, then special_tokens_map.json
    const char *sp[SP_COUNT] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>",
                                "<|endoftext|>"};
    for (int k = 0; k < SP_COUNT; k++) {
        const char *c;
        if (cfg && (c = token_content(cJSON_GetObjectItemCaseSensitive(cfg, sp_keys[k]))))
            sp[k] = c;
        if (map && (c = token_content(cJSON_GetObjectItemCaseSensitive(map, sp_keys[k]))))
            sp[k] = c;
    }
    int32_t ids[SP_COUNT];
    for (int k = 0; k < SP_COUNT; k++) {
        if (k == SP_PAD && pad_override >= 0) {
            const char *s = vocab_str(t, pad_override);
            if (!s) {
                st = DF_ERROR(DF_ERR_ARG, "pad id %d is not in the vocabulary of %s (size %d)",
                              pad_override, dir, t->n_vocab);
                goto done;
            }
            sp[k] = s;
            ids[k] = pad_override;
        } else {
            ids[k] = special_token_id(t, added, sp[k]);
        }
        if (ids[k] < 0) {
            st = DF_ERROR(DF_ERR_FORMAT, "%s: %s \"%s\" is neither in vocab.json nor in "
                          "added_tokens_decoder", dir, sp_keys[k], sp[k]);
            goto done;
        }
    }
    // split set: the added tokens of the config, then the special tokens
    for (const cJSON *it = added ? added->child : NULL; it; it = it->next) {
        const char *c = token_content(it);
        char *e;
        const long id = it->string ? strtol(it->string, &e, 10) : -1;
        if (!c || id < 0 || id > INT32_MAX || *e != '\0') {
            st = DF_ERROR(DF_ERR_FORMAT, "%s/tokenizer_config.json: bad added_tokens_decoder "
                          "entry \"%s\"", dir, it->string ? it->string : "?");
            goto done;
        }
        if ((st = add_special(t, c, (int32_t)id)) != DF_OK) goto done;
    }
    for (int k = 0; k < SP_COUNT; k++)
        if ((st = add_special(t, sp[k], ids[k])) != DF_OK) goto done;
    t->bos = ids[SP_BOS];
    t->eos = ids[SP_EOS];
    t->pad = ids[SP_PAD];
done:
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    return st;
}

df_status df_tokenizer_load(const char *dir, int pad_id, df_tokenizer **out) {
    DF_FAIL_IF(!dir || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    df_tokenizer *t = calloc(1, sizeof *t);
    DF_FAIL_IF(!t, DF_ERR_NOMEM, "out of memory");
    char path[4096];
    df_status st;
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    if ((st = load_vocab(t, path)) != DF_OK) goto fail;
    for (int b = 0; b < 256; b++) {
        char s[16];
        size_t n = utf8_put(byte_to_unicode(b), s);
        t->byte_id[b] = vocab_find(t, s, n);
        memcpy(s + n, "</w>", 4);
        t->byte_id_w[b] = vocab_find(t, s, n + 4);
        if (t->byte_id[b] < 0 || t->byte_id_w[b] < 0) {
            st = DF_ERROR(DF_ERR_FORMAT, "%s: byte symbol for byte %d (\"%.*s\") or its </w> "
                          "form is missing", path, b, (int)n, s);
            goto fail;
        }
    }
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if ((st = load_merges(t, path)) != DF_OK) goto fail;
    if ((st = load_config(t, dir, pad_id)) != DF_OK) goto fail;
    t->sot_vocab = vocab_find_cstr(t, "<|startoftext|>");
    t->eot_vocab = vocab_find_cstr(t, "<|endoftext|>");
    *out = t;
    return DF_OK;
fail:
    df_tokenizer_destroy(t);
    return st;
}

void df_tokenizer_default_dir(const char *data_dir, char *buf, size_t n) {
#if defined(DF_DATA_DIR)
    const char *def = DF_DATA_DIR;
#elif defined(DF_SOURCE_DIR)
    const char *def = DF_SOURCE_DIR "/data";
#else
    const char *def = "data";
#endif
    snprintf(buf, n, "%s/clip", (data_dir && *data_dir) ? data_dir : def);
}

df_status df_tokenizer_load_default(int pad_id, df_tokenizer **out) {
    char dir[4096];
    df_tokenizer_default_dir(NULL, dir, sizeof dir);
    return df_tokenizer_load(dir, pad_id, out);
}

// ---------------------------------------------------------------------------------------------
// text clean-up (BasicTokenizer), NFC, lowercasing

// UTF-8 -> code points; strict (no overlongs, surrogates or values > U+10FFFF).
static df_status utf8_decode(const char *s, size_t n, size_t base_off, u32vec *out) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        const unsigned c = p[i];
        uint32_t cp;
        int k;
        if (c < 0x80) {
            cp = c;
            k = 0;
        } else if (c >= 0xC2 && c <= 0xDF) {
            cp = c & 0x1F;
            k = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            cp = c & 0x0F;
            k = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            cp = c & 0x07;
            k = 3;
        } else {
            return DF_ERROR(DF_ERR_ARG, "invalid UTF-8 in the prompt at byte %zu", base_off + i);
        }
        if (i + (size_t)k >= n && k)
            return DF_ERROR(DF_ERR_ARG, "truncated UTF-8 sequence in the prompt at byte %zu",
                            base_off + i);
        for (int j = 1; j <= k; j++) {
            if ((p[i + (size_t)j] & 0xC0) != 0x80)
                return DF_ERROR(DF_ERR_ARG, "invalid UTF-8 in the prompt at byte %zu",
                                base_off + i);
            cp = (cp << 6) | (p[i + (size_t)j] & 0x3F);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return DF_ERROR(DF_ERR_ARG, "invalid UTF-8 in the prompt at byte %zu", base_off + i);
        PUSH_OR_NOMEM(u32_push(out, cp));
        i += (size_t)k + 1;
    }
    return DF_OK;
}

static int is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

// _clean_text + _tokenize_chinese_chars
static df_status clean_text(const u32vec *in, u32vec *out) {
    for (size_t i = 0; i < in->n; i++) {
        const uint32_t cp = in->v[i];
        const unsigned cls = df_uc_props(cp) & DF_UC_CLASS_MASK;
        const int keep_ws = cp == '\t' || cp == '\n' || cp == '\r';
        if (cp == 0 || cp == 0xFFFD || (cls == DF_UC_CONTROL && !keep_ws)) continue;
        if (cp == ' ' || keep_ws || cls == DF_UC_SPACE_SEP) {
            PUSH_OR_NOMEM(u32_push(out, ' '));
        } else if (is_cjk(cp)) {
            PUSH_OR_NOMEM(u32_push(out, ' ') && u32_push(out, cp) && u32_push(out, ' '));
        } else {
            PUSH_OR_NOMEM(u32_push(out, cp));
        }
    }
    return DF_OK;
}

enum {
    H_SBASE = 0xAC00, H_LBASE = 0x1100, H_VBASE = 0x1161, H_TBASE = 0x11A7,
    H_LCOUNT = 19, H_VCOUNT = 21, H_TCOUNT = 28, H_NCOUNT = 21 * 28, H_SCOUNT = 19 * 21 * 28,
};

static int decompose_full(uint32_t cp, u32vec *out, int depth) {
    if (cp >= H_SBASE && cp < H_SBASE + H_SCOUNT) {
        const uint32_t s = cp - H_SBASE;
        if (!u32_push(out, H_LBASE + s / H_NCOUNT)) return 0;
        if (!u32_push(out, H_VBASE + (s % H_NCOUNT) / H_TCOUNT)) return 0;
        if (s % H_TCOUNT && !u32_push(out, H_TBASE + s % H_TCOUNT)) return 0;
        return 1;
    }
    uint32_t d[2];
    const int k = depth < 8 ? df_uc_decompose1(cp, d) : 0;
    if (k == 0) return u32_push(out, cp);
    for (int i = 0; i < k; i++)
        if (!decompose_full(d[i], out, depth + 1)) return 0;
    return 1;
}

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 &&
        b > H_TBASE && b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    return df_uc_compose(a, b);
}

// Unicode NFC: canonical decomposition, canonical ordering, canonical composition.
static df_status nfc(const u32vec *in, u32vec *out) {
    u32vec d = {0};
    for (size_t i = 0; i < in->n; i++) {
        if (!decompose_full(in->v[i], &d, 0)) {
            free(d.v);
            return DF_ERROR(DF_ERR_NOMEM, "out of memory while tokenizing");
        }
    }
    // canonical ordering: stable sort of each run of non-starters by combining class
    for (size_t i = 1; i < d.n; i++) {
        const uint32_t c = d.v[i];
        const int cc = df_uc_ccc(c);
        if (cc == 0) continue;
        size_t j = i;
        while (j > 0) {
            const int pc = df_uc_ccc(d.v[j - 1]);
            if (pc == 0 || pc <= cc) break;
            d.v[j] = d.v[j - 1];
            j--;
        }
        d.v[j] = c;
    }
    // composition
    size_t starter = 0, w = 0;
    int have_starter = 0, last_cc = -1;
    for (size_t i = 0; i < d.n; i++) {
        const uint32_t c = d.v[i];
        const int cc = df_uc_ccc(c);
        if (have_starter) {
            // not blocked: adjacent to the starter, or every char in between has a lower class
            const int blocked = last_cc != -1 && (last_cc == 0 || last_cc >= cc);
            const uint32_t comp = blocked ? 0 : compose_pair(d.v[starter], c);
            if (comp) {
                d.v[starter] = comp;
                continue;
            }
        }
        if (cc == 0) {
            starter = w;
            have_starter = 1;
            last_cc = -1;
        } else {
            last_cc = cc;
        }
        d.v[w++] = c;
    }
    d.n = w;
    for (size_t i = 0; i < d.n; i++) {
        if (!u32_push(out, d.v[i])) {
            free(d.v);
            return DF_ERROR(DF_ERR_NOMEM, "out of memory while tokenizing");
        }
    }
    free(d.v);
    return DF_OK;
}

// Python str.lower() of w[0..n) (one whitespace-delimited word) appended to out.
static df_status lower_word(const uint32_t *w, size_t n, u32vec *out) {
    for (size_t i = 0; i < n; i++) {
        const uint32_t c = w[i];
        if (c == 0x130) { // LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + COMBINING DOT ABOVE
            PUSH_OR_NOMEM(u32_push(out, 'i') && u32_push(out, 0x307));
        } else if (c == 0x3A3) {
            // final sigma: cased (case-ignorable)* SIGMA !((case-ignorable)* cased)
            size_t j = i;
            while (j > 0 && (df_uc_props(w[j - 1]) & DF_UC_CASE_IGNORABLE)) j--;
            int final = j > 0 && (df_uc_props(w[j - 1]) & DF_UC_CASED);
            if (final) {
                size_t k = i + 1;
                while (k < n && (df_uc_props(w[k]) & DF_UC_CASE_IGNORABLE)) k++;
                final = k == n || !(df_uc_props(w[k]) & DF_UC_CASED);
            }
            PUSH_OR_NOMEM(u32_push(out, final ? 0x3C2 : 0x3C3));
        } else {
            PUSH_OR_NOMEM(u32_push(out, df_uc_lower_simple(c)));
        }
    }
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// pre-tokenization and BPE

// Case-insensitive (regex IGNORECASE, simple folding) match of ASCII pattern pat at w[i..n).
// The text is already lowercased, so besides the pattern's own characters only U+017F (long s,
// which folds to 's') can match.
static size_t match_ci(const uint32_t *w, size_t n, size_t i, const char *pat) {
    size_t k = 0;
    for (; pat[k]; k++) {
        if (i + k >= n) return 0;
        const uint32_t c = w[i + k];
        const uint32_t p = (unsigned char)pat[k];
        if (!(c == p || (p == 's' && c == 0x17F) || (p >= 'a' && p <= 'z' && c == p - 32)))
            return 0;
    }
    return k;
}

static df_status bpe_word(const df_tokenizer *t, const uint8_t *b, size_t n, i32vec *out) {
    int32_t stack_buf[256];
    int32_t *s = n <= 256 ? stack_buf : malloc(n * sizeof *s);
    if (!s) return DF_ERROR(DF_ERR_NOMEM, "out of memory while tokenizing");
    for (size_t i = 0; i < n; i++) s[i] = i + 1 == n ? t->byte_id_w[b[i]] : t->byte_id[b[i]];
    size_t m = n;
    while (m > 1) {
        int32_t best = INT32_MAX, ba = -1, bb = -1, bres = -1;
        for (size_t i = 0; i + 1 < m; i++) {
            int32_t res;
            const int32_t r = merge_find(t, s[i], s[i + 1], &res);
            if (r < best) {
                best = r;
                ba = s[i];
                bb = s[i + 1];
                bres = res;
            }
        }
        if (best == INT32_MAX) break;
        size_t w = 0;
        for (size_t i = 0; i < m;) {
            if (i + 1 < m && s[i] == ba && s[i + 1] == bb) {
                s[w++] = bres;
                i += 2;
            } else {
                s[w++] = s[i++];
            }
        }
        m = w;
    }
    df_status st = DF_OK;
    for (size_t i = 0; i < m && st == DF_OK; i++)
        if (!i32_push(out, s[i])) st = DF_ERROR(DF_ERR_NOMEM, "out of memory while tokenizing");
    if (s != stack_buf) free(s);
    return st;
}

// One regex match w[i..j): byte-level encode and BPE (the literal special strings are the
// BPE cache's two preset entries and map straight to their vocabulary ids).
static df_status emit_token(const df_tokenizer *t, const uint32_t *w, size_t i, size_t j,
                            i32vec *out) {
    uint8_t stack_buf[512];
    const size_t cap = (j - i) * 4;
    uint8_t *b = cap <= sizeof stack_buf ? stack_buf : malloc(cap);
    if (!b) return DF_ERROR(DF_ERR_NOMEM, "out of memory while tokenizing");
    size_t n = 0;
    for (size_t k = i; k < j; k++) n += utf8_put(w[k], (char *)b + n);
    df_status st = DF_OK;
    if (n == 15 && memcmp(b, "<|startoftext|>", 15) == 0 && t->sot_vocab >= 0) {
        if (!i32_push(out, t->sot_vocab)) st = DF_ERROR(DF_ERR_NOMEM, "out of memory");
    } else if (n == 13 && memcmp(b, "<|endoftext|>", 13) == 0 && t->eot_vocab >= 0) {
        if (!i32_push(out, t->eot_vocab)) st = DF_ERROR(DF_ERR_NOMEM, "out of memory");
    } else {
        st = bpe_word(t, b, n, out);
    }
    if (b != stack_buf) free(b);
    return st;
}

// Pre-tokenizes one lowercased word (no whitespace inside) and appends its token ids.
static df_status tokenize_word(const df_tokenizer *t, const uint32_t *w, size_t n, i32vec *out) {
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t i = 0;
    while (i < n) {
        const uint32_t c = w[i];
        size_t len = 0;
        if (c == '<') {
            len = match_ci(w, n, i, "<|startoftext|>");
            if (!len) len = match_ci(w, n, i, "<|endoftext|>");
        } else if (c == '\'') {
            for (size_t k = 0; k < sizeof contractions / sizeof *contractions && !len; k++)
                len = match_ci(w, n, i, contractions[k]);
        }
        if (!len) {
            const unsigned cls = df_uc_props(c) & DF_UC_CLASS_MASK;
            if (cls == DF_UC_LETTER) {
                len = 1;
                while (i + len < n && (df_uc_props(w[i + len]) & DF_UC_CLASS_MASK) == DF_UC_LETTER)
                    len++;
            } else if (cls == DF_UC_NUMBER) {
                len = 1;
            } else {
                len = 1;
                while (i + len < n) {
                    const unsigned p = df_uc_props(w[i + len]);
                    const unsigned k = p & DF_UC_CLASS_MASK;
                    if (k == DF_UC_LETTER || k == DF_UC_NUMBER || (p & DF_UC_PYSPACE)) break;
                    len++;
                }
            }
        }
        DF_TRY(emit_token(t, w, i, i + len, out));
        i += len;
    }
    return DF_OK;
}

// CLIPTokenizer._tokenize of one piece of text that contains no added token.
static df_status tokenize_piece(const df_tokenizer *t, const char *s, size_t n, size_t off,
                                i32vec *out) {
    u32vec a = {0}, b = {0}, c = {0}, lw = {0};
    df_status st;
    if ((st = utf8_decode(s, n, off, &a)) != DF_OK) goto done;
    if ((st = clean_text(&a, &b)) != DF_OK) goto done;
    if ((st = nfc(&b, &c)) != DF_OK) goto done;
    // whitespace_tokenize, lower() per word, then the CLIP regex per word
    for (size_t i = 0; i < c.n;) {
        if (df_uc_props(c.v[i]) & DF_UC_PYSPACE) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < c.n && !(df_uc_props(c.v[j]) & DF_UC_PYSPACE)) j++;
        lw.n = 0;
        if ((st = lower_word(c.v + i, j - i, &lw)) != DF_OK) goto done;
        if ((st = tokenize_word(t, lw.v, lw.n, out)) != DF_OK) goto done;
        i = j;
    }
done:
    free(a.v);
    free(b.v);
    free(c.v);
    free(lw.v);
    return st;
}

// Content tokens of text (no bos/eos): split on added tokens, tokenize the rest.
static df_status tokenize(const df_tokenizer *t, const char *text, i32vec *out) {
    const size_t n = strlen(text);
    size_t start = 0;
    for (size_t i = 0; i < n;) {
        int best = -1;
        size_t best_len = 0;
        for (int k = 0; k < t->n_special; k++) {
            const size_t l = t->special_len[k];
            if (l > best_len && l <= n - i && memcmp(text + i, t->special_str[k], l) == 0) {
                best = k;
                best_len = l;
            }
        }
        if (best < 0) {
            i++;
            continue;
        }
        if (i > start) DF_TRY(tokenize_piece(t, text + start, i - start, start, out));
        PUSH_OR_NOMEM(i32_push(out, t->special_id[best]));
        i += best_len;
        start = i;
    }
    if (n > start) DF_TRY(tokenize_piece(t, text + start, n - start, start, out));
    return DF_OK;
}

df_status df_tokenizer_encode_all(const df_tokenizer *t, const char *text, int32_t **ids,
                                  size_t *n) {
    DF_FAIL_IF(!t || !text || !ids || !n, DF_ERR_ARG, "NULL argument");
    *ids = NULL;
    *n = 0;
    i32vec v = {0};
    df_status st = DF_OK;
    if (!i32_push(&v, t->bos)) st = DF_ERROR(DF_ERR_NOMEM, "out of memory while tokenizing");
    if (st == DF_OK) st = tokenize(t, text, &v);
    if (st == DF_OK && !i32_push(&v, t->eos))
        st = DF_ERROR(DF_ERR_NOMEM, "out of memory while tokenizing");
    if (st != DF_OK) {
        free(v.v);
        return st;
    }
    *ids = v.v;
    *n = v.n;
    return DF_OK;
}

df_status df_tokenizer_encode(const df_tokenizer *t, const char *text, int32_t ids[DF_TOK_CTX],
                              int32_t mask[DF_TOK_CTX], size_t *n_tokens) {
    DF_FAIL_IF(!t || !text || !ids, DF_ERR_ARG, "NULL argument");
    i32vec v = {0};
    df_status st = tokenize(t, text, &v);
    if (st != DF_OK) {
        free(v.v);
        return st;
    }
    const size_t keep = v.n < DF_TOK_CTX - 2 ? v.n : DF_TOK_CTX - 2; // [bos] + 75 + [eos]
    ids[0] = t->bos;
    if (keep) memcpy(ids + 1, v.v, keep * sizeof *ids);
    ids[keep + 1] = t->eos;
    for (size_t i = keep + 2; i < DF_TOK_CTX; i++) ids[i] = t->pad;
    if (mask)
        for (size_t i = 0; i < DF_TOK_CTX; i++) mask[i] = i < keep + 2 ? 1 : 0;
    if (n_tokens) *n_tokens = v.n;
    free(v.v);
    return DF_OK;
}
