// Weight conversion: stored dtype (F32/F16/BF16) -> f32 scratch, and the conv weight packing
// PyTorch [Cout][Cin][k][k] -> HWIO [k][k][Cin][Cout] used by df_conv2d.
#include "kernels/kernels.h"

#include <string.h>
#if defined(__F16C__) && defined(__AVX__)
#    include <immintrin.h>
#endif

void df_convert_to_f32(float *dst, const void *src, df_dtype dtype, size_t n) {
    DF_ASSERT(dtype == DF_DTYPE_F32 || dtype == DF_DTYPE_F16 || dtype == DF_DTYPE_BF16);
    if (n == 0) return;
    const unsigned char *p = (const unsigned char *)src;
    if (dtype == DF_DTYPE_F32) {
        memcpy(dst, src, n * sizeof(float));
    } else if (dtype == DF_DTYPE_BF16) {
        for (size_t i = 0; i < n; i++) { // bf16 is the top half of an f32
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            const uint32_t u = (uint32_t)h << 16;
            memcpy(&dst[i], &u, 4);
        }
    } else {
        size_t i = 0;
#if defined(__F16C__) && defined(__AVX__)
        for (; i + 8 <= n; i += 8) { // hardware f16 -> f32 (exact, subnormals included)
            const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i));
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
        }
#endif
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = df_f16_to_f32(h);
        }
    }
}

// Block of output channels converted at a time (rows of the PyTorch weight are contiguous).
#define PACK_CO_BLOCK 32

void df_conv_weight_pack(float *dst, const void *src, df_dtype dtype, int cout, int cin, int k) {
    DF_ASSERT(cout > 0 && cin > 0 && k > 0);
    const size_t kk = (size_t)k * k, row = (size_t)cin * kk; // one output channel: [Cin][k][k]
    const size_t esize = df_dtype_size(dtype);
    float *tmp = df_malloc(PACK_CO_BLOCK * row * sizeof(float)); // [cb][Cin][k][k]
    DF_ASSERT(tmp != NULL);
    // src [Cout][Cin][k][k] -> dst [k][k][Cin][Cout], PACK_CO_BLOCK output channels at a time
    for (int co0 = 0; co0 < cout; co0 += PACK_CO_BLOCK) {
        const int cb = cout - co0 < PACK_CO_BLOCK ? cout - co0 : PACK_CO_BLOCK;
        df_convert_to_f32(tmp, (const unsigned char *)src + (size_t)co0 * row * esize, dtype,
                          (size_t)cb * row);
        for (size_t t = 0; t < kk; t++)
            for (int ci = 0; ci < cin; ci++) {
                float *d = dst + (t * cin + (size_t)ci) * cout + co0;
                const float *s = tmp + (size_t)ci * kk + t;
                for (int c = 0; c < cb; c++) d[c] = s[(size_t)c * row];
            }
    }
    df_free(tmp);
}
