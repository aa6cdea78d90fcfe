// Table-driven command-line parser shared by the `distrifuse` tools. One table describes every
// option (names, kind, the struct field it writes, help text); the parser and --help both read
// it, so the help can never drift from what is parsed. Defaults shown by --help are rendered from
// a default-initialised instance of the same struct.
//
// Syntax: `-x VALUE`, `--long VALUE`, `--long=VALUE`; flags take no value. Arguments that are not
// options are errors (there are no positional arguments).
#ifndef DF_TOOLS_CLI_ARGS_H
#define DF_TOOLS_CLI_ARGS_H

#include <stddef.h>
#include <stdio.h>

typedef enum cli_kind {
    CLI_SECTION = 0, // a heading in --help (long_name = the title); not an option
    CLI_FLAG,        // no value: stores `value` into an int field
    CLI_INT,         // int field
    CLI_I64,         // int64_t field
    CLI_FLOAT,       // float field
    CLI_STR,         // const char * field (points into argv)
    CLI_CHOICE,      // const char * field, one of `choices` ("a|b|c")
    CLI_INT_PAIR,    // two values (`--opt A B`) into an int[2] field
    CLI_ENUM,        // one of the names of a library name table (`value` = cli_enum_id): the
                     // enum value into an int-sized enum field (CLI_E_SAMPLER: the canonical
                     // name into a const char * field)
} cli_kind;

// The library's name tables (distrifuse/engine.h, pipeline.h) CLI_ENUM options choose from.
typedef enum cli_enum_id {
    CLI_E_SAMPLER = 0, // df_sampler_name (const char * field)
    CLI_E_PARALLELISM, // df_parallelism_name
    CLI_E_SYNC_MODE,   // df_sync_mode_name
    CLI_E_SPLIT_SCHEME, // df_split_scheme_name
    CLI_E_COMM_DTYPE,  // df_comm_dtype_name (the user-selectable ones)
    CLI_E_PROGRESS,    // df_progress_name
    CLI_E_GN_COMPAT,   // df_gn_compat_name
    CLI_E_COMPUTE,     // df_compute_name
    CLI_E_CPU,         // df_cpu_variant_name (auto first)
    CLI_E_CONV_ALGO,   // df_conv_algo_name
    CLI_E_COUNT
} cli_enum_id;

// Item k (0-based) of name table `id`: its name (NULL past the end) and enum value.
const char *cli_enum_item(int id, int k, int *value);
// The names of table `id` as "a, b, c" (sep ", ") or "a,b,c" (sep ",").
void cli_enum_list(int id, const char *sep, char *buf, size_t cap);

typedef struct cli_opt {
    cli_kind kind;
    char short_name;       // 0: none
    const char *long_name; // without "--"
    const char *metavar;   // value name in --help (NULL for flags)
    size_t offset;         // offsetof(the struct, field)
    int value;             // CLI_FLAG: the value stored
    const char *choices;   // CLI_CHOICE: "a|b|c"
    const char *def;       // default text for --help; NULL: rendered from the defaults struct;
                           // "": no default shown
    const char *help;
} cli_opt;

// Parses argv[1..argc-1] into `dst` (a struct the table's offsets refer to). `seen` (may be
// NULL) gets, per table entry, the number of times the option was given. Returns 0 on success,
// -1 on a usage error with a one-line message in err (no trailing newline).
int cli_parse(const cli_opt *opts, int n_opts, void *dst, int argc, char **argv, int *seen,
              char *err, size_t err_cap);

// Prints the option list: one line per option, its help text and "(default: X)" from
// `defaults` (the same struct type as dst).
void cli_print_options(FILE *f, const cli_opt *opts, int n_opts, const void *defaults);

// Index of the table entry with this long name (-1 if none).
int cli_find(const cli_opt *opts, int n_opts, const char *long_name);

#endif // DF_TOOLS_CLI_ARGS_H
