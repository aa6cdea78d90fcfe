// Kernel tests run once per variant (core/cpu.h): `test_kernels_X [--cpu auto|avx2|avx512|ref]`.
// A variant this CPU lacks skips the test (exit 77, with a message); an unknown name exits 2.
#ifndef DF_TEST_CPU_H
#define DF_TEST_CPU_H

#include "core/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void df_test_select_cpu(int argc, char **argv) {
    const char *prog = argc > 0 ? argv[0] : "test";
    df_cpu_variant v = DF_CPU_AUTO;
    if (argc == 3 && strcmp(argv[1], "--cpu") == 0) {
        if (!df_cpu_variant_parse(argv[2], &v)) {
            fprintf(stderr, "%s: error: unknown --cpu variant '%s'\n", prog, argv[2]);
            exit(2);
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--cpu auto|avx2|avx512|ref]\n", prog);
        exit(2);
    }
    if (df_cpu_set_variant(v) != 0) {
        printf("%s: SKIP: this CPU does not support the %s kernels (%s)\n", prog,
               df_cpu_variant_name(v), df_cpu_describe());
        exit(77);
    }
    printf("%s: kernel variant %s\n", prog, df_cpu_describe());
    fflush(stdout);
}

#endif // DF_TEST_CPU_H
