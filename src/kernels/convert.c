// Weight conversion: stored dtype (F32/F16/BF16) -> f32 scratch, and the conv weight packing
// PyTorch [Cout][Cin][k][k] -> HWIO [k][k][Cin][Cout] used by df_conv2d.
#include "kernels/kernels.h"

#include <string.h>

// Reads element i of src (any alignment) as f32.
static inline float load_as_f32(const void *src, df_dtype dtype, size_t i) {
    const unsigned char *p = (const unsigned char *)src;
    switch (dtype) {
    case DF_DTYPE_F32: {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    case DF_DTYPE_F16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return df_f16_to_f32(h);
    }
    case DF_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        return df_bf16_to_f32(h);
    }
    default:
        DF_ASSERT(!"df_convert_to_f32: dtype must be F32, F16 or BF16");
    }
    return 0.0f;
}

void df_convert_to_f32(float *dst, const void *src, df_dtype dtype, size_t n) {
    DF_ASSERT(dtype == DF_DTYPE_F32 || dtype == DF_DTYPE_F16 || dtype == DF_DTYPE_BF16);
    if (n == 0) return;
    const unsigned char *p = (const unsigned char *)src;
    if (dtype == DF_DTYPE_F32) {
        memcpy(dst, src, n * sizeof(float));
    } else if (dtype == DF_DTYPE_BF16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&dst[i], &u, 4);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = df_f16_to_f32(h);
        }
    }
}

void df_conv_weight_pack(float *dst, const void *src, df_dtype dtype, int cout, int cin, int k) {
    DF_ASSERT(cout > 0 && cin > 0 && k > 0);
    // src [Cout][Cin][k][k] -> dst [k][k][Cin][Cout]
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    size_t s = (((size_t)co * cin + ci) * k + ky) * k + kx;
                    size_t d = (((size_t)ky * k + kx) * cin + ci) * cout + co;
                    dst[d] = load_as_f32(src, dtype, s);
                }
}
