// libFuzzer target: the single-file (LDM/SGM) name mapping. Each input line is a tensor name,
// optionally followed by "|d0,d1,..." (its shape, dims < 64; default [1]); the lines become a
// safetensors file of F16 zeros, from which the four components (unet, vae, text_encoder,
// text_encoder_2) are mapped to diffusers names.
#include "fuzz_util.h"

#include "io/safetensors.h"
#include "model/weights.h"

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void put_s(buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(buf *b, const char *s, size_t n) {
    put_s(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[8];
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            put(b, e, 2);
        } else if (c < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", c);
            put_s(b, e);
        } else {
            put(b, (const char *)&c, 1);
        }
    }
    put_s(b, "\"");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    char *text = fuzz_str(data, size);
    buf h = {0};
    put_s(&h, "{");
    uint64_t off = 0;
    int count = 0;
    for (char *line = text; line && *line && count < 4096;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *bar = strchr(line, '|');
        int64_t shape[4] = {1};
        int nd = 1;
        if (bar) {
            *bar = 0;
            nd = 0;
            for (char *d = bar + 1; *d && nd < 4;) {
                shape[nd++] = strtol(d, &d, 10) & 63;
                if (*d != ',') break;
                d++;
            }
        }
        uint64_t numel = 1;
        for (int i = 0; i < nd; i++) numel *= (uint64_t)shape[i];
        if (count) put_s(&h, ",");
        put_json_string(&h, line, strlen(line));
        char t[256];
        int k = snprintf(t, sizeof t, ":{\"dtype\":\"F16\",\"shape\":[");
        for (int i = 0; i < nd; i++)
            k += snprintf(t + k, sizeof t - (size_t)k, "%s%lld", i ? "," : "", (long long)shape[i]);
        snprintf(t + k, sizeof t - (size_t)k, "],\"data_offsets\":[%llu,%llu]}",
                 (unsigned long long)off, (unsigned long long)(off + 2 * numel));
        put_s(&h, t);
        off += 2 * numel;
        count++;
        line = nl ? nl + 1 : NULL;
    }
    put_s(&h, "}");
    while (h.n % 8) put_s(&h, " ");
    size_t total = 8 + h.n + off;
    uint8_t *file = calloc(1, total);
    if (!file) abort();
    uint64_t hl = h.n;
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)(hl >> (8 * i));
    memcpy(file + 8, h.p, h.n);
    df_st_file *f = NULL;
    df_status st = df_st_open(fuzz_file(file, total), &f);
    fuzz_check_status(st);
    if (st == DF_OK) {
        static const char *const comps[] = {"unet", "vae", "text_encoder", "text_encoder_2"};
        for (int c = 0; c < 4; c++) {
            df_weights *w = NULL;
            st = df_weights_from_single(f, comps[c], &w);
            fuzz_check_status(st);
            if (st == DF_OK && df_weights_count(w) <= 0) abort();
            char msg[256];
            if (w) (void)df_weights_unused(w, NULL, msg, sizeof msg);
            df_weights_destroy(w);
        }
        df_st_close(f);
    }
    free(file);
    free(h.p);
    free(text);
    return 0;
}
