// libFuzzer target: the safetensors reader (header length, JSON header, tensor table, offsets,
// dtypes, shapes, metadata) and the conversion of every tensor to f32.
#include "fuzz_util.h"

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    df_st_file *f = NULL;
    df_status st = df_st_open(fuzz_file(data, size), &f);
    fuzz_check_status(st);
    if (st != DF_OK) {
        if (f) abort(); // *out is NULL on failure
        return 0;
    }
    const int n = df_st_count(f);
    for (int i = 0; i < n; i++) {
        const df_st_tensor *t = df_st_get(f, i);
        if (!t || !t->name || df_st_find(f, t->name) != t) abort(); // names unique, findable
        if (t->nbytes > size) abort();                             // inside the file
        if (t->numel <= ((size_t)1 << 20)) {
            float *buf = malloc(t->numel * sizeof(float) + 4);
            if (!buf) abort();
            fuzz_check_status(df_st_read_f32(f, t->name, buf, t->numel));
            free(buf);
        }
    }
    (void)df_st_metadata(f, "format");
    df_st_close(f);
    return 0;
}
