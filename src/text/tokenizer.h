// CLIP BPE tokenizer, token-for-token as transformers' slow CLIPTokenizer (the class diffusers
// loads for SD1.x / SDXL) without ftfy: see ../shared/spec/sdxl.md §5.3.
//
// encode(text):
//   1. the raw text is split around the added/special tokens (bos, eos, unk, pad and the
//      config's added_tokens_decoder); each of those becomes its id directly. SDXL's tokenizer_2
//      registers its pad token "!" this way, so every "!" there becomes id 0.
//   2. every other piece is cleaned as BERT's BasicTokenizer(strip_accents=False,
//      do_split_on_punc=False) does: control characters (category C*, except \t \n \r), NUL and
//      U+FFFD dropped, whitespace -> space, spaces around CJK ideographs, Unicode NFC, split on
//      whitespace, Python str.lower() per word (full mapping, final sigma);
//   3. pre-tokenized with <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|
//      [^\s\p{L}\p{N}]+ (case-insensitive), each match UTF-8 encoded through bytes_to_unicode,
//      "</w>" on its last symbol, and merged by BPE rank (merges.txt line k has rank k-1;
//      at most 48894 merges are used, as transformers does);
//   4. [bos] + the first 75 tokens + [eos], right-padded to 77 with the pad id; mask 1 on
//      bos..eos, 0 on padding.
// A tokenizer object is immutable after loading: encode may be called from several threads.
#ifndef DF_TEXT_TOKENIZER_H
#define DF_TEXT_TOKENIZER_H

#include "core/core.h"

#include <stddef.h>
#include <stdint.h>

#define DF_TOK_CTX 77       // model_max_length
#define DF_TOK_BOS 49406    // <|startoftext|> in the CLIP vocabulary
#define DF_TOK_EOS 49407    // <|endoftext|>
#define DF_TOK_PAD_SDXL2 0  // SDXL tokenizer_2 pads with "!" (id 0)

typedef struct df_tokenizer df_tokenizer;

// Loads DIR/vocab.json and DIR/merges.txt (a diffusers `tokenizer` folder or data/clip).
// DIR/tokenizer_config.json and DIR/special_tokens_map.json are read when present (bos / eos /
// unk / pad tokens, added_tokens_decoder); without them the CLIPTokenizer defaults apply
// (pad <|endoftext|> = 49407).
// pad_id >= 0 overrides the pad token with vocabulary entry pad_id, which is then also registered
// as a special token like transformers does for a pad token (pass DF_TOK_PAD_SDXL2 to get SDXL's
// tokenizer_2 from the shipped vocabulary); pad_id < 0 takes it from the config.
// Errors: DF_ERR_IO (missing/unreadable file), DF_ERR_FORMAT (bad JSON, bad merges line, a merge
// whose symbols are not in the vocabulary), DF_ERR_ARG (pad_id not in the vocabulary).
df_status df_tokenizer_load(const char *dir, int pad_id, df_tokenizer **out);

// The vocabulary shipped with distrifuse: <data_dir>/clip, or with data_dir NULL / empty
// <build option DF_DATA_DIR>/clip (default <source dir>/data/clip). Writes the folder into buf.
void df_tokenizer_default_dir(const char *data_dir, char *buf, size_t n);
df_status df_tokenizer_load_default(int pad_id, df_tokenizer **out); // the build default

void df_tokenizer_destroy(df_tokenizer *tok); // accepts NULL

int df_tokenizer_pad_id(const df_tokenizer *tok);
int df_tokenizer_bos_id(const df_tokenizer *tok);
int df_tokenizer_eos_id(const df_tokenizer *tok);
int df_tokenizer_vocab_size(const df_tokenizer *tok); // largest id + 1 (49408 for CLIP)
// Vocabulary string of id (byte-level alphabet, "</w>" suffixes), NULL if out of range.
const char *df_tokenizer_token(const df_tokenizer *tok, int id);

// tokenizer(text, padding="max_length", max_length=77, truncation=True): ids and attention
// mask [77] (mask may be NULL). text is UTF-8 (DF_ERR_ARG names the byte offset of invalid
// UTF-8). *n_tokens, if not NULL, receives the untruncated content-token count (> 75 means the
// prompt was truncated).
df_status df_tokenizer_encode(const df_tokenizer *tok, const char *text, int32_t ids[DF_TOK_CTX],
                              int32_t mask[DF_TOK_CTX], size_t *n_tokens);

// tokenizer(text).input_ids: [bos] + all tokens + [eos], no truncation or padding. *ids is
// malloc'ed (release with free()), *n its length.
df_status df_tokenizer_encode_all(const df_tokenizer *tok, const char *text, int32_t **ids,
                                  size_t *n);

#endif // DF_TEXT_TOKENIZER_H
