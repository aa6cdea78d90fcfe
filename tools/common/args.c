// Table-driven command-line parser (see args.h).
#include "args.h"

#include "distrifuse/engine.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int cli_find(const cli_opt *opts, int n_opts, const char *long_name) {
    for (int i = 0; i < n_opts; i++)
        if (opts[i].kind != CLI_SECTION && strcmp(opts[i].long_name, long_name) == 0) return i;
    return -1;
}

// "a|b|c" contains s as a whole item.
static int choice_ok(const char *choices, const char *s) {
    size_t n = strlen(s);
    const char *p = choices;
    while (*p) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

// Writes the choices as "a, b, c".
static void choices_text(const char *choices, char *buf, size_t cap) {
    size_t o = 0;
    for (const char *p = choices; *p && o + 3 < cap; p++) {
        if (*p == '|') {
            buf[o++] = ',';
            buf[o++] = ' ';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = 0;
}

const char *cli_enum_item(int id, int k, int *value) {
    int v = k;
    const char *n = NULL;
    switch ((cli_enum_id)id) {
    case CLI_E_SAMPLER: n = df_sampler_name(k); break;
    case CLI_E_PARALLELISM:
        if (k < DF_PAR_COUNT) n = df_parallelism_name((df_parallelism)k);
        break;
    case CLI_E_SYNC_MODE:
        if (k < DF_SYNC_COUNT) n = df_sync_mode_name((df_sync_mode)k);
        break;
    case CLI_E_SPLIT_SCHEME:
        if (k < DF_SPLIT_COUNT) n = df_split_scheme_name((df_split_scheme)k);
        break;
    case CLI_E_COMM_DTYPE:
        if (k < DF_COMM_DTYPE_USER_COUNT) n = df_comm_dtype_name((df_comm_dtype)k);
        break;
    case CLI_E_PROGRESS:
        if (k < DF_PROGRESS_COUNT) n = df_progress_name((df_progress)k);
        break;
    case CLI_E_GN_COMPAT:
        if (k < DF_GN_COMPAT_COUNT) n = df_gn_compat_name((df_gn_compat)k);
        break;
    case CLI_E_COMPUTE:
        if (k < 2) n = df_compute_name((df_compute_dtype)k);
        break;
    case CLI_E_CONV_ALGO: n = df_conv_algo_name(k); break;
    case CLI_E_CPU: // auto, then the variants in order
        v = k - 1;
        if (v < DF_CPU_VARIANT_COUNT) n = df_cpu_variant_name((df_cpu_variant)v);
        break;
    default: break;
    }
    if (value) *value = v;
    return n && strcmp(n, "?") != 0 ? n : NULL;
}

void cli_enum_list(int id, const char *sep, char *buf, size_t cap) {
    size_t o = 0;
    if (cap) buf[0] = 0;
    const char *n;
    for (int k = 0; (n = cli_enum_item(id, k, NULL)) != NULL && o < cap; k++) {
        int w = snprintf(buf + o, cap - o, "%s%s", k ? sep : "", n);
        if (w < 0) break;
        o += (size_t)w;
    }
}

static int set_value(const cli_opt *o, void *dst, const char *name, const char *v, char *err,
                     size_t cap) {
    char *field = (char *)dst + o->offset;
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case CLI_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < INT32_MIN || x > INT32_MAX) {
            snprintf(err, cap, "invalid value '%s' for %s (expected an integer)", v, name);
            return -1;
        }
        *(int *)field = (int)x;
        return 0;
    }
    case CLI_I64: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno) {
            snprintf(err, cap, "invalid value '%s' for %s (expected an integer)", v, name);
            return -1;
        }
        *(int64_t *)field = (int64_t)x;
        return 0;
    }
    case CLI_FLOAT: {
        float x = strtof(v, &end);
        if (!*v || *end || errno || !isfinite(x)) {
            snprintf(err, cap, "invalid value '%s' for %s (expected a number)", v, name);
            return -1;
        }
        *(float *)field = x;
        return 0;
    }
    case CLI_STR: *(const char **)field = v; return 0;
    case CLI_CHOICE:
        if (!choice_ok(o->choices, v)) {
            char list[256];
            choices_text(o->choices, list, sizeof list);
            snprintf(err, cap, "invalid value '%s' for %s (choose from %s)", v, name, list);
            return -1;
        }
        *(const char **)field = v;
        return 0;
    case CLI_ENUM: {
        const char *n;
        for (int k = 0; (n = cli_enum_item(o->value, k, NULL)) != NULL; k++) {
            int val = 0;
            cli_enum_item(o->value, k, &val);
            if (strcmp(n, v) != 0) continue;
            if (o->value == CLI_E_SAMPLER) *(const char **)field = n;
            else *(int *)field = val;
            return 0;
        }
        char list[256];
        cli_enum_list(o->value, ", ", list, sizeof list);
        snprintf(err, cap, "invalid value '%s' for %s (choose from %s)", v, name, list);
        return -1;
    }
    default: snprintf(err, cap, "internal: option %s has no value kind", name); return -1;
    }
}

int cli_parse(const cli_opt *opts, int n_opts, void *dst, int argc, char **argv, int *seen,
              char *err, size_t err_cap) {
    if (seen) memset(seen, 0, (size_t)n_opts * sizeof *seen);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int idx = -1;
        const char *inline_val = NULL;
        char name[128];
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a + 2, '=');
            size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
            if (len >= sizeof name) len = sizeof name - 1;
            memcpy(name, a + 2, len);
            name[len] = 0;
            idx = cli_find(opts, n_opts, name);
            if (eq) inline_val = eq + 1;
            snprintf(name, sizeof name, "--%.*s", (int)len, a + 2);
        } else if (a[0] == '-' && a[1] && !a[2]) {
            for (int k = 0; k < n_opts; k++)
                if (opts[k].kind != CLI_SECTION && opts[k].short_name == a[1]) idx = k;
            snprintf(name, sizeof name, "-%c", a[1]);
        } else {
            snprintf(err, err_cap, "unexpected argument '%s' (options start with - or --)", a);
            return -1;
        }
        if (idx < 0) {
            snprintf(err, err_cap, "unknown option '%s' (see --help)", a);
            return -1;
        }
        const cli_opt *o = &opts[idx];
        if (seen) seen[idx]++;
        if (o->kind == CLI_FLAG) {
            if (inline_val) {
                snprintf(err, err_cap, "option %s takes no value", name);
                return -1;
            }
            *(int *)((char *)dst + o->offset) = o->value;
            continue;
        }
        if (o->kind == CLI_INT_PAIR) { // two separate arguments, never --opt=A
            if (inline_val || i + 2 >= argc) {
                snprintf(err, err_cap, "option %s needs two values (%s)", name,
                         o->metavar ? o->metavar : "A B");
                return -1;
            }
            cli_opt one = *o;
            one.kind = CLI_INT;
            for (int k = 0; k < 2; k++) {
                one.offset = o->offset + (size_t)k * sizeof(int);
                if (set_value(&one, dst, name, argv[i + 1 + k], err, err_cap) != 0) return -1;
            }
            i += 2;
            continue;
        }
        const char *v = inline_val;
        if (!v) {
            if (i + 1 >= argc) {
                snprintf(err, err_cap, "option %s needs a value (%s)", name,
                         o->metavar ? o->metavar : "VALUE");
                return -1;
            }
            v = argv[++i];
        }
        if (set_value(o, dst, name, v, err, err_cap) != 0) return -1;
    }
    return 0;
}

static void render_default(const cli_opt *o, const void *defaults, char *buf, size_t cap) {
    buf[0] = 0;
    if (o->def) {
        snprintf(buf, cap, "%s", o->def);
        return;
    }
    if (!defaults) return;
    const char *field = (const char *)defaults + o->offset;
    switch (o->kind) {
    case CLI_INT: snprintf(buf, cap, "%d", *(const int *)field); break;
    case CLI_I64: snprintf(buf, cap, "%lld", (long long)*(const int64_t *)field); break;
    case CLI_INT_PAIR:
        snprintf(buf, cap, "%d %d", ((const int *)field)[0], ((const int *)field)[1]);
        break;
    case CLI_FLOAT: snprintf(buf, cap, "%g", (double)*(const float *)field); break;
    case CLI_STR:
    case CLI_CHOICE: {
        const char *s = *(const char *const *)field;
        snprintf(buf, cap, "%s", s ? s : "none");
        break;
    }
    case CLI_ENUM: {
        if (o->value == CLI_E_SAMPLER) {
            const char *s = *(const char *const *)field;
            snprintf(buf, cap, "%s", s ? s : "none");
            break;
        }
        const int cur = *(const int *)field;
        const char *n;
        int val = 0;
        for (int k = 0; (n = cli_enum_item(o->value, k, &val)) != NULL; k++)
            if (val == cur) {
                snprintf(buf, cap, "%s", n);
                break;
            }
        break;
    }
    default: break;
    }
}

enum { HELP_COL = 34, HELP_WIDTH = 100 };

// Prints text from column HELP_COL, wrapped at spaces to HELP_WIDTH columns.
static void print_wrapped(FILE *f, const char *text) {
    const int room = HELP_WIDTH - HELP_COL;
    const char *p = text;
    while (*p) {
        int len = (int)strlen(p);
        if (len > room) {
            len = room;
            while (len > 0 && p[len] != ' ') len--;
            if (len == 0) len = room; // a word longer than the line
        }
        fprintf(f, "%.*s\n", len, p);
        p += len;
        while (*p == ' ') p++;
        if (*p) fprintf(f, "%*s", HELP_COL, "");
    }
}

void cli_print_options(FILE *f, const cli_opt *opts, int n_opts, const void *defaults) {
    for (int i = 0; i < n_opts; i++) {
        const cli_opt *o = &opts[i];
        if (o->kind == CLI_SECTION) {
            fprintf(f, "\n%s:\n", o->long_name);
            continue;
        }
        char left[128];
        int n = o->short_name
                    ? snprintf(left, sizeof left, "  -%c, --%s", o->short_name, o->long_name)
                    : snprintf(left, sizeof left, "      --%s", o->long_name);
        if (n < 0 || (size_t)n >= sizeof left) n = (int)strlen(left);
        if (o->kind == CLI_CHOICE) {
            char list[128];
            snprintf(list, sizeof list, "%s", o->choices);
            for (char *c = list; *c; c++)
                if (*c == '|') *c = ',';
            snprintf(left + n, sizeof left - (size_t)n, " {%s}", list);
        } else if (o->kind == CLI_ENUM) {
            char list[128];
            cli_enum_list(o->value, ",", list, sizeof list);
            snprintf(left + n, sizeof left - (size_t)n, " {%s}", list);
        } else if (o->kind != CLI_FLAG) {
            snprintf(left + n, sizeof left - (size_t)n, " %s", o->metavar ? o->metavar : "VALUE");
        }
        char def[256], text[1024];
        render_default(o, defaults, def, sizeof def);
        if (def[0]) snprintf(text, sizeof text, "%s (default: %s)", o->help, def);
        else snprintf(text, sizeof text, "%s", o->help);
        if (strlen(left) > HELP_COL - 2) fprintf(f, "%s\n%*s", left, HELP_COL, "");
        else fprintf(f, "%-*s", HELP_COL, left);
        print_wrapped(f, text);
    }
}
