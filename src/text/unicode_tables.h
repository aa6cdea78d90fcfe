// Unicode property lookups for the CLIP tokenizer (tables generated from CPython's unicodedata by
// scripts/gen_unicode_tables.py into unicode_tables.c; binary search over ranges).
#ifndef DF_TEXT_UNICODE_TABLES_H
#define DF_TEXT_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

// df_uc_props(cp) & DF_UC_CLASS_MASK: general-category class
enum {
    DF_UC_OTHER = 0,     // P*, S*, M*, Zl, Zp
    DF_UC_LETTER = 1,    // L* (\p{L})
    DF_UC_NUMBER = 2,    // N* (\p{N})
    DF_UC_CONTROL = 3,   // C*: Cc, Cf, Cn (unassigned), Co, Cs
    DF_UC_SPACE_SEP = 4, // Zs
};
#define DF_UC_CLASS_MASK 7u
#define DF_UC_PYSPACE 8u          // Python str.isspace()
#define DF_UC_CASED 16u           // Cased (Lowercase | Uppercase | Lt)
#define DF_UC_CASE_IGNORABLE 32u  // Case_Ignorable (as CPython's str.lower() sees it)

extern const char df_uc_unicode_version[]; // "14.0.0"

unsigned df_uc_props(uint32_t cp);
// str.lower() of one code point, except U+0130 (-> "i\u0307") and the final-sigma context rule
// (U+03A3 maps to U+03C3 here), which the caller handles.
uint32_t df_uc_lower_simple(uint32_t cp);
// Canonical combining class (0 for starters).
int df_uc_ccc(uint32_t cp);
// One level of canonical decomposition (not Hangul): number of code points written (0: none).
int df_uc_decompose1(uint32_t cp, uint32_t out[2]);
// Primary composite of the pair (a, b) as NFC composes it (not Hangul), 0 if none.
uint32_t df_uc_compose(uint32_t a, uint32_t b);

#endif // DF_TEXT_UNICODE_TABLES_H
