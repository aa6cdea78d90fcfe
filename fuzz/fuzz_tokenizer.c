// libFuzzer target: the CLIP tokenizer (UTF-8 decoding, text clean-up, NFC, lowercasing,
// pre-tokenisation, BPE) on the vocabulary the project ships (data/clip), with both pad tokens.
#include "fuzz_util.h"

#include "text/tokenizer.h"

static df_tokenizer *g_tok[2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok[0]) {
        if (df_tokenizer_load_default(-1, &g_tok[0]) != DF_OK ||
            df_tokenizer_load_default(DF_TOK_PAD_SDXL2, &g_tok[1]) != DF_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", df_last_error());
            abort();
        }
    }
    if (size > 1 << 16) return 0;
    char *text = fuzz_str(data, size);
    const df_tokenizer *tok = g_tok[size & 1];
    int32_t ids[DF_TOK_CTX], mask[DF_TOK_CTX];
    size_t n_tok = 0;
    df_status st = df_tokenizer_encode(tok, text, ids, mask, &n_tok);
    fuzz_check_status(st);
    if (st == DF_OK) {
        const int V = df_tokenizer_vocab_size(tok);
        if (ids[0] != df_tokenizer_bos_id(tok)) abort();
        for (int i = 0; i < DF_TOK_CTX; i++)
            if (ids[i] < 0 || ids[i] >= V || (mask[i] != 0 && mask[i] != 1)) abort();
        int32_t *all = NULL;
        size_t n = 0;
        st = df_tokenizer_encode_all(tok, text, &all, &n);
        fuzz_check_status(st);
        if (st != DF_OK || n != n_tok + 2) abort(); // the same text: bos + n_tok + eos
        free(all);
    }
    free(text);
    return 0;
}
