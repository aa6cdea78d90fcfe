// libFuzzer target: model_index.json of a diffusers pipeline folder, through df_model_load_ex
// on a folder that holds only that file (loading then stops at the missing components).
#include "fuzz_util.h"

#include "distrifuse/pipeline.h"

#include <sys/stat.h>

static char g_dir[64], g_file[96];

static void cleanup(void) {
    unlink(g_file);
    rmdir(g_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/df-fuzz-model.XXXXXX");
        if (!mkdtemp(g_dir)) abort();
        snprintf(g_file, sizeof g_file, "%s/model_index.json", g_dir);
        atexit(cleanup);
    }
    FILE *f = fopen(g_file, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
    df_model *m = NULL;
    df_status st = df_model_load_ex(g_dir, NULL, &m);
    fuzz_check_status(st);
    if (st == DF_OK) abort(); // no weights in the folder: loading cannot succeed
    if (m) abort();
    return 0;
}
