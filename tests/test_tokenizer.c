// CLIP tokenizer: golden-free checks with the shipped vocabulary (data/clip), then ids and masks
// for the 30 golden prompts of sdxl/tokenizer.safetensors (tokenizer, tokenizer_2) and
// sd15/tokenizer.safetensors; prompts from the case folders' manifest.json.
#include "io/safetensors.h"
#include "text/tokenizer.h"
#include "text/unicode_tables.h"

#include "df_golden.h"

#include <cjson/cJSON.h>

// Untruncated ids of text as a printable list (for failure messages).
static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "\n");
}

static int ids_equal(const df_tokenizer *tok, const char *text, const int32_t *want, size_t n) {
    int32_t *ids = NULL;
    size_t m = 0;
    EXPECT_OK(df_tokenizer_encode_all(tok, text, &ids, &m));
    const int ok = ids && m == n && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!ok) {
        fprintf(stderr, "  mismatch for \"%s\"\n", text);
        print_ids("got ", ids, m);
        print_ids("want", want, n);
    }
    free(ids);
    return ok;
}

static int same_ids(const df_tokenizer *tok, const char *a, const char *b) {
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    EXPECT_OK(df_tokenizer_encode_all(tok, a, &ia, &na));
    EXPECT_OK(df_tokenizer_encode_all(tok, b, &ib, &nb));
    const int ok = ia && ib && na == nb && memcmp(ia, ib, na * sizeof *ia) == 0;
    if (!ok) {
        fprintf(stderr, "  \"%s\" and \"%s\" tokenize differently\n", a, b);
        print_ids("a", ia, na);
        print_ids("b", ib, nb);
    }
    free(ia);
    free(ib);
    return ok;
}

static void test_unicode_tables(void) {
    EXPECT_EQ_I64(df_uc_props('a') & DF_UC_CLASS_MASK, DF_UC_LETTER);
    EXPECT_EQ_I64(df_uc_props(0xD55C) & DF_UC_CLASS_MASK, DF_UC_LETTER); // Hangul syllable
    EXPECT_EQ_I64(df_uc_props(0x3042) & DF_UC_CLASS_MASK, DF_UC_LETTER); // hiragana
    EXPECT_EQ_I64(df_uc_props('7') & DF_UC_CLASS_MASK, DF_UC_NUMBER);
    EXPECT_EQ_I64(df_uc_props(0x00BD) & DF_UC_CLASS_MASK, DF_UC_NUMBER); // 1/2
    EXPECT_EQ_I64(df_uc_props(0x200D) & DF_UC_CLASS_MASK, DF_UC_CONTROL); // ZWJ (Cf)
    EXPECT_EQ_I64(df_uc_props(0x00A0) & DF_UC_CLASS_MASK, DF_UC_SPACE_SEP);
    EXPECT_EQ_I64(df_uc_props(0x1F431) & DF_UC_CLASS_MASK, DF_UC_OTHER); // cat face (So)
    EXPECT_TRUE(df_uc_props(0x2028) & DF_UC_PYSPACE);
    EXPECT_EQ_I64(df_uc_lower_simple('Q'), 'q');
    EXPECT_EQ_I64(df_uc_lower_simple(0x0394), 0x03B4); // Greek Delta
    EXPECT_EQ_I64(df_uc_lower_simple(0x041A), 0x043A); // Cyrillic Ka
    EXPECT_EQ_I64(df_uc_lower_simple(0xFF21), 0xFF41); // full-width A
    EXPECT_EQ_I64(df_uc_lower_simple(0x0100), 0x0101); // stride-2 run
    EXPECT_EQ_I64(df_uc_lower_simple(0x0101), 0x0101);
    EXPECT_EQ_I64(df_uc_lower_simple(0x212A), 'k'); // Kelvin sign
    EXPECT_EQ_I64(df_uc_ccc(0x0301), 230);
    EXPECT_EQ_I64(df_uc_ccc(0x0316), 220);
    EXPECT_EQ_I64(df_uc_compose('e', 0x0301), 0x00E9);
    EXPECT_EQ_I64(df_uc_compose('e', 'e'), 0);
    uint32_t d[2];
    EXPECT_EQ_I64(df_uc_decompose1(0x00E9, d), 2);
    EXPECT_TRUE(d[0] == 'e' && d[1] == 0x0301);
    EXPECT_EQ_I64(df_uc_decompose1(0xFB01, d), 0); // ligature fi: compatibility only
}

static void test_shipped_vocab(void) {
    df_tokenizer *tok = NULL;
    EXPECT_OK(df_tokenizer_load_default(-1, &tok));
    if (!tok) return;
    EXPECT_EQ_I64(df_tokenizer_vocab_size(tok), 49408);
    EXPECT_EQ_I64(df_tokenizer_pad_id(tok), 49407);
    EXPECT_EQ_I64(df_tokenizer_bos_id(tok), DF_TOK_BOS);
    EXPECT_EQ_I64(df_tokenizer_eos_id(tok), DF_TOK_EOS);
    EXPECT_TRUE(strcmp(df_tokenizer_token(tok, 0), "!") == 0);
    EXPECT_TRUE(strcmp(df_tokenizer_token(tok, 256), "!</w>") == 0);

    int32_t ids[DF_TOK_CTX], mask[DF_TOK_CTX];
    size_t nt = 0;
    EXPECT_OK(df_tokenizer_encode(tok, "a photo of a cat", ids, mask, &nt));
    static const int32_t cat[7] = {49406, 320, 1125, 539, 320, 2368, 49407};
    int ok = nt == 5;
    for (int i = 0; i < DF_TOK_CTX; i++) {
        ok &= ids[i] == (i < 7 ? cat[i] : 49407);
        ok &= mask[i] == (i < 7);
    }
    EXPECT_TRUE(ok);

    // "!" is ordinary BPE with the CLIP-L pad; "!!!" merges to one token
    static const int32_t bang[3] = {49406, 256, 49407}, bang3[3] = {49406, 995, 49407};
    EXPECT_TRUE(ids_equal(tok, "!", bang, 3));
    EXPECT_TRUE(ids_equal(tok, "!!!", bang3, 3));
    // literal special tokens, empty and whitespace-only prompts
    static const int32_t special[4] = {49406, 49406, 49407, 49407};
    EXPECT_TRUE(ids_equal(tok, "<|startoftext|><|endoftext|>", special, 4));
    EXPECT_TRUE(ids_equal(tok, " <|STARTOFTEXT|> \t<|endoftext|>", special, 4));
    static const int32_t empty[2] = {49406, 49407};
    EXPECT_TRUE(ids_equal(tok, "", empty, 2));
    EXPECT_TRUE(ids_equal(tok, " \t\n\u00a0\u3000 ", empty, 2));

    // clean-up equivalences: case, whitespace, NFC, control characters, final sigma
    EXPECT_TRUE(same_ids(tok, "A Photo OF a CAT", "a photo of a cat"));
    EXPECT_TRUE(same_ids(tok, "  a\tphoto\u00a0of\na  cat ", "a photo of a cat"));
    EXPECT_TRUE(same_ids(tok, "Cafe\u0301", "caf\u00e9"));
    EXPECT_TRUE(same_ids(tok, "ca\u200bt\x07", "cat"));
    EXPECT_TRUE(same_ids(tok, "\u1100\u1161\u11a8", "\uac01"));            // Hangul LVT
    EXPECT_TRUE(same_ids(tok, "a\u0316\u0301", "\u00e1\u0316"));           // reordering
    EXPECT_TRUE(same_ids(tok, "\u039f\u0394\u039f\u03a3", "\u03bf\u03b4\u03bf\u03c2")); // ΟΔΟΣ
    EXPECT_TRUE(same_ids(tok, "\u03a3\u0391", "\u03c3\u03b1"));            // ΣΑ: not final
    EXPECT_TRUE(same_ids(tok, "\u4e2d\u6587", "\u4e2d \u6587"));           // CJK split
    // full-width letters are lowercased but not folded to ASCII
    {
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        EXPECT_OK(df_tokenizer_encode_all(tok, "\uff21\uff22\uff23", &a, &na));
        EXPECT_OK(df_tokenizer_encode_all(tok, "abc", &b, &nb));
        EXPECT_TRUE(a && b && (na != nb || memcmp(a, b, na * sizeof *a) != 0));
        free(a);
        free(b);
    }

    // truncation: [bos] + 75 + [eos], no padding, n_tokens reports the full count
    char longp[1024] = "";
    for (int i = 0; i < 100; i++) strcat(longp, "cat ");
    EXPECT_OK(df_tokenizer_encode(tok, longp, ids, mask, &nt));
    EXPECT_EQ_I64((int64_t)nt, 100);
    EXPECT_EQ_I64(ids[0], 49406);
    EXPECT_EQ_I64(ids[75], 2368);
    EXPECT_EQ_I64(ids[76], 49407);
    EXPECT_EQ_I64(mask[76], 1);

    // errors
    EXPECT_ERR(df_tokenizer_encode(tok, "bad \xff utf8", ids, mask, NULL), DF_ERR_ARG, "byte 4");
    EXPECT_ERR(df_tokenizer_encode(tok, "cut \xe6\x97", ids, mask, NULL), DF_ERR_ARG, "byte 4");
    df_tokenizer_destroy(tok);

    // SDXL tokenizer_2 from the shipped vocabulary: pad "!" = 0 becomes a special token
    tok = NULL;
    EXPECT_OK(df_tokenizer_load_default(DF_TOK_PAD_SDXL2, &tok));
    if (tok) {
        EXPECT_EQ_I64(df_tokenizer_pad_id(tok), 0);
        static const int32_t acat[5] = {49406, 320, 2368, 0, 49407};
        EXPECT_TRUE(ids_equal(tok, "a cat!", acat, 5));
        EXPECT_OK(df_tokenizer_encode(tok, "!!!", ids, mask, NULL));
        EXPECT_TRUE(ids[0] == 49406 && ids[1] == 0 && ids[2] == 0 && ids[3] == 0 &&
                    ids[4] == 49407 && ids[5] == 0 && mask[4] == 1 && mask[5] == 0);
        df_tokenizer_destroy(tok);
    }

    tok = NULL;
    EXPECT_ERR(df_tokenizer_load("/nonexistent/tokenizer", -1, &tok), DF_ERR_IO, "vocab.json");
    EXPECT_TRUE(tok == NULL);
    EXPECT_ERR(df_tokenizer_load_default(60000, &tok), DF_ERR_ARG, "pad id 60000");

    // a data folder overrides the shipped location (df_load_params.data_dir; the programs'
    // DF_DATA_DIR); NULL / empty is the build default
    char dir[4096];
    df_tokenizer_default_dir("/nonexistent-df-data", dir, sizeof dir);
    EXPECT_TRUE(strcmp(dir, "/nonexistent-df-data/clip") == 0);
    EXPECT_ERR(df_tokenizer_load(dir, -1, &tok), DF_ERR_IO,
               "/nonexistent-df-data/clip/vocab.json");
    df_tokenizer_default_dir(NULL, dir, sizeof dir);
    EXPECT_TRUE(strstr(dir, "/clip") != NULL);
    char dir2[4096];
    df_tokenizer_default_dir("", dir2, sizeof dir2);
    EXPECT_TRUE(strcmp(dir, dir2) == 0);
}

// ---------------------------------------------------------------------------------------------
// goldens

static const cJSON *find_prompts(const cJSON *manifest) {
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(manifest, "cases");
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(c, "kind");
        if (cJSON_IsString(kind) && strcmp(kind->valuestring, "tokenizer") == 0) {
            const cJSON *in = cJSON_GetObjectItemCaseSensitive(c, "inputs");
            return cJSON_GetObjectItemCaseSensitive(in, "prompts");
        }
    }
    return NULL;
}

// Reads an I32 tensor of exactly n elements (NULL and a failed check otherwise).
static int32_t *read_i32(const df_st_file *f, const char *name, size_t n) {
    const df_st_tensor *t = df_st_find(f, name);
    EXPECT_TRUE(t != NULL && t->dtype == DF_DTYPE_I32 && t->numel == n);
    if (!t || t->dtype != DF_DTYPE_I32 || t->numel != n) {
        fprintf(stderr, "  golden %s missing or not I32[%zu]\n", name, n);
        return NULL;
    }
    int32_t *v = malloc(n * sizeof *v);
    memcpy(v, t->data, n * sizeof *v);
    return v;
}

// Compares all prompts for tokenizer `tok` against out.<key>.*; returns the number matching.
static int check_golden(const df_tokenizer *tok, const df_st_file *f, const char *key,
                        const cJSON *prompts, int np) {
    char name[128];
    snprintf(name, sizeof name, "out.%s.input_ids", key);
    int32_t *gids = read_i32(f, name, (size_t)np * DF_TOK_CTX);
    snprintf(name, sizeof name, "out.%s.attention_mask", key);
    int32_t *gmask = read_i32(f, name, (size_t)np * DF_TOK_CTX);
    int matched = 0;
    if (!gids || !gmask) goto done;
    int p = 0;
    for (const cJSON *it = prompts->child; it && p < np; it = it->next, p++) {
        const char *text = it->valuestring;
        int32_t ids[DF_TOK_CTX], mask[DF_TOK_CTX];
        EXPECT_OK(df_tokenizer_encode(tok, text, ids, mask, NULL));
        const int32_t *wi = gids + (size_t)p * DF_TOK_CTX, *wm = gmask + (size_t)p * DF_TOK_CTX;
        int ok = memcmp(ids, wi, sizeof ids) == 0 && memcmp(mask, wm, sizeof mask) == 0;
        if (!ok) {
            fprintf(stderr, "  %s prompt %d \"%s\": ids/mask differ\n", key, p, text);
            print_ids("got ", ids, DF_TOK_CTX);
            print_ids("want", wi, DF_TOK_CTX);
        }
        // untruncated ids
        const df_st_tensor *u;
        snprintf(name, sizeof name, "out.%s.untruncated_ids.%02d", key, p);
        if ((u = df_st_find(f, name)) != NULL && u->dtype == DF_DTYPE_I32) {
            int32_t *want = malloc(u->numel * sizeof *want);
            memcpy(want, u->data, u->numel * sizeof *want);
            ok &= ids_equal(tok, text, want, u->numel);
            free(want);
        }
        df_test_checks++;
        if (!ok) df_test_failures++;
        matched += ok;
    }
done:
    free(gids);
    free(gmask);
    return matched;
}

static void test_golden_case(const char *gdir, const char *case_dir, const char *fixture,
                             int with_tok2) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s/manifest.json", gdir, case_dir);
    cJSON *manifest = dfg_load_json(path); // Python's -Infinity / NaN tokens allowed
    EXPECT_TRUE(manifest != NULL);
    if (!manifest) return;
    const cJSON *prompts = find_prompts(manifest);
    const int np = cJSON_GetArraySize(prompts);
    EXPECT_EQ_I64(np, 30);
    snprintf(path, sizeof path, "%s/%s/tokenizer.safetensors", gdir, case_dir);
    df_st_file *f = NULL;
    EXPECT_OK(df_st_open(path, &f));
    if (!f || np <= 0) goto done;

    for (int k = 0; k < (with_tok2 ? 2 : 1); k++) {
        const char *key = k ? "tok2" : "tok1";
        snprintf(path, sizeof path, "%s/models/%s/%s", gdir, fixture,
                 k ? "tokenizer_2" : "tokenizer");
        df_tokenizer *tok = NULL;
        EXPECT_OK(df_tokenizer_load(path, -1, &tok));
        if (!tok) continue;
        EXPECT_EQ_I64(df_tokenizer_pad_id(tok), k ? 0 : 49407);
        int m = check_golden(tok, f, key, prompts, np);
        fprintf(stderr, "  %s %s (%s): %d/%d prompts match\n", case_dir, key, path, m, np);
        df_tokenizer_destroy(tok);
        // the shipped vocabulary with the same pad id must behave identically
        tok = NULL;
        EXPECT_OK(df_tokenizer_load_default(k ? DF_TOK_PAD_SDXL2 : -1, &tok));
        if (!tok) continue;
        m = check_golden(tok, f, key, prompts, np);
        fprintf(stderr, "  %s %s (shipped data/clip): %d/%d prompts match\n", case_dir, key, m,
                np);
        df_tokenizer_destroy(tok);
    }
done:
    df_st_close(f);
    cJSON_Delete(manifest);
}

int main(void) {
    test_unicode_tables();
    test_shipped_vocab();
    const char *gdir = df_test_golden_dir();
    if (gdir) {
        test_golden_case(gdir, "sdxl", "tiny-sdxl", 1);
        test_golden_case(gdir, "sd15", "tiny-sd15", 0);
    }
    if (!gdir) fprintf(stderr, "golden comparisons skipped (transformers' token ids)\n");
    return df_test_result();
}
