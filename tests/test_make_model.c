// df-make-model writes exactly the tensor names and shapes of the real diffusers / LDM files:
// generated tiny-sdxl / tiny-sd15 models (folder and single-file layouts) are compared name by
// name and shape by shape with the golden fixtures, which were written by diffusers and
// transformers themselves. Also checks determinism (same seed -> same bytes).
#include "io/safetensors.h"

#include "df_test.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DF_BINARY_DIR
#    define DF_BINARY_DIR "."
#endif

// system() of the printf-formatted command line.
static int sh(const char *fmt, ...) DF_PRINTF(1, 2);
static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

// Command prefix running df-make-model (arguments follow).
#define MAKE_MODEL "DF_DATA_DIR=" DF_SOURCE_DIR "/data " DF_BINARY_DIR "/tools/df-make-model "

// Every tensor of `want` (except I64 buffers) exists in `got` with the same shape, and vice versa.
static void compare_files(const char *got_path, const char *want_path) {
    df_st_file *got = NULL, *want = NULL;
    EXPECT_OK(df_st_open(got_path, &got));
    EXPECT_OK(df_st_open(want_path, &want));
    if (!got || !want) goto done;
    int n_want = 0;
    for (int i = 0; i < df_st_count(want); i++) {
        const df_st_tensor *w = df_st_get(want, i);
        if (w->dtype == DF_DTYPE_I64) continue;
        n_want++;
        const df_st_tensor *g = df_st_find(got, w->name);
        if (!g) {
            fprintf(stderr, "  missing %s in %s\n", w->name, got_path);
            df_test_failures++;
            continue;
        }
        int same = g->ndim == w->ndim;
        for (int d = 0; same && d < w->ndim; d++) same = g->shape[d] == w->shape[d];
        if (!same) {
            fprintf(stderr, "  shape mismatch for %s\n", w->name);
            df_test_failures++;
        }
    }
    EXPECT_EQ_I64(df_st_count(got), n_want);
done:
    df_st_close(got);
    df_st_close(want);
}

int main(void) {
    const char *golden = df_test_golden_dir();
    char p1[4096], p2[4096];
    const char *tmp = "/tmp/df_test_make_model";
    EXPECT_EQ_I64(sh("rm -rf %s && mkdir -p %s", tmp, tmp), 0);

    // determinism: the same seed gives identical files, another seed different ones
    const char *bf16_single = "--arch tiny-sd15 --layout single --dtype bf16";
    EXPECT_EQ_I64(sh(MAKE_MODEL "%s --seed 3 --out %s/a.st", bf16_single, tmp), 0);
    EXPECT_EQ_I64(sh(MAKE_MODEL "%s --seed 3 --out %s/b.st", bf16_single, tmp), 0);
    EXPECT_EQ_I64(sh(MAKE_MODEL "%s --seed 4 --out %s/c.st", bf16_single, tmp), 0);
    EXPECT_EQ_I64(sh("cmp -s %s/a.st %s/b.st", tmp, tmp), 0);
    EXPECT_NE_I64(sh("cmp -s %s/a.st %s/c.st", tmp, tmp), 0);
    // bad arguments fail with usage status and write nothing
    EXPECT_NE_I64(sh(MAKE_MODEL "--arch nope --out %s/bad 2>/dev/null", tmp), 0);
    EXPECT_NE_I64(sh("test -e %s/bad", tmp), 0);

    if (!golden) {
        fprintf(stderr, "golden comparisons skipped (names and shapes of the golden fixtures)\n");
        return df_test_result();
    }
    EXPECT_EQ_I64(sh(MAKE_MODEL "--arch tiny-sdxl --dtype f16 --out %s/sdxl", tmp), 0);
    EXPECT_EQ_I64(sh(MAKE_MODEL "--arch tiny-sd15 --dtype f32 --out %s/sd15", tmp), 0);
    EXPECT_EQ_I64(sh(MAKE_MODEL "--arch tiny-sd15 --layout single --out %s/sd15.safetensors",
                     tmp),
                  0);
    const char *sdxl_files[] = {"unet/diffusion_pytorch_model", "vae/diffusion_pytorch_model",
                                "text_encoder/model", "text_encoder_2/model"};
    for (int i = 0; i < 4; i++) {
        snprintf(p1, sizeof p1, "%s/sdxl/%s.safetensors", tmp, sdxl_files[i]);
        snprintf(p2, sizeof p2, "%s/models/tiny-sdxl/%s.safetensors", golden, sdxl_files[i]);
        compare_files(p1, p2);
        if (i == 3) break;
        snprintf(p1, sizeof p1, "%s/sd15/%s.safetensors", tmp, sdxl_files[i]);
        snprintf(p2, sizeof p2, "%s/models/tiny-sd15/%s.safetensors", golden, sdxl_files[i]);
        compare_files(p1, p2);
    }
    snprintf(p1, sizeof p1, "%s/sd15.safetensors", tmp);
    snprintf(p2, sizeof p2, "%s/models/tiny-sd15-single/tiny-sd15.safetensors", golden);
    compare_files(p1, p2);
    return df_test_result();
}
