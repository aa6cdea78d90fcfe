// libFuzzer target: --init-latent files (df_gen_params.init_latent): a safetensors file with
// the tensor "latents" (or a single tensor) of shape [1, C, H, W]. The first 3 bytes choose
// the expected C (1..4), H and W (1..32); the rest is the file.
#include "fuzz_util.h"

#include "pipeline/pipeline_impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    const int c = 1 + data[0] % 4, h = 1 + data[1] % 32, w = 1 + data[2] % 32;
    float *x = malloc((size_t)c * h * w * sizeof(float));
    if (!x) abort();
    fuzz_check_status(df_i_read_init_latent(fuzz_file(data + 3, size - 3), c, h, w, x));
    free(x);
    return 0;
}
