// libFuzzer target: the command-line parser of the programs (tools/common/args.c): the input,
// split at NUL bytes, is argv[1..]; the table has every option kind. Checks that a success
// stores only values of the option's kind (choices from the list) and a failure has a message.
#include "fuzz_util.h"

#include "args.h"

#include <stddef.h>

typedef struct fa {
    const char *model, *sampler, *mode;
    int steps, flag, other_flag;
    long long seed;
    float cfg;
} fa;

#define OFF(f) offsetof(fa, f)
static const cli_opt k_opts[] = {
    {CLI_SECTION, 0, "Section", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_STR, 'm', "model", "PATH", OFF(model), 0, NULL, "", "model"},
    {CLI_CHOICE, 0, "sampling-method", "NAME", OFF(sampler), 0, "ddim|euler|euler_a|dpm++2m|pndm",
     NULL, "sampler"},
    {CLI_CHOICE, 0, "gn-compat", "MODE", OFF(mode), 0, "exact|original", NULL, "gn"},
    {CLI_INT, 0, "steps", "N", OFF(steps), 0, NULL, NULL, "steps"},
    {CLI_I64, 's', "seed", "N", OFF(seed), 0, NULL, NULL, "seed"},
    {CLI_FLOAT, 0, "cfg-scale", "G", OFF(cfg), 0, NULL, NULL, "cfg"},
    {CLI_FLAG, 'v', "verbose", NULL, OFF(flag), 1, NULL, "", "flag"},
    {CLI_FLAG, 0, "no-thing", NULL, OFF(other_flag), 7, NULL, "", "flag value 7"},
};
#define N_OPTS ((int)(sizeof k_opts / sizeof k_opts[0]))

static int in_choices(const char *v, const char *choices) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t k = bar ? (size_t)(bar - p) : strlen(p);
        if (k == n && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *s = fuzz_str(data, size);
    char *argv[260];
    int argc = 0;
    argv[argc++] = (char *)"prog";
    for (size_t i = 0; i <= size && argc < 256;) {
        argv[argc++] = s + i;
        i += strlen(s + i) + 1;
    }
    argv[argc] = NULL;
    fa a = {.sampler = "euler", .mode = "exact", .steps = 20, .cfg = 5.0f};
    int seen[N_OPTS];
    char err[512];
    err[0] = 0;
    int rc = cli_parse(k_opts, N_OPTS, &a, argc, argv, seen, err, sizeof err);
    if (rc != 0 && !err[0]) abort();
    if (rc == 0) {
        if (!in_choices(a.sampler, k_opts[2].choices) || !in_choices(a.mode, k_opts[3].choices))
            abort();
        if (a.flag != 0 && a.flag != 1) abort();
        if (a.other_flag != 0 && a.other_flag != 7) abort();
        for (int i = 0; i < N_OPTS; i++)
            if (seen[i] < 0 || seen[i] > argc) abort();
    }
    if (data[0] == 'h') { // now and then the help text from the parsed values
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            cli_print_options(null, k_opts, N_OPTS, &a);
            fclose(null);
        }
    }
    free(s);
    return 0;
}
