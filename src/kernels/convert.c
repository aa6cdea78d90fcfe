// Weight conversion: stored dtype (F32/F16/BF16) -> f32 scratch, and the conv weight packing
// PyTorch [Cout][Cin][k][k] -> HWIO [k][k][Cin][Cout] used by df_conv2d.
//
// The packing is a transpose of the [Cout][R] matrix (R = Cin*k*k, column j = ci*k*k + t) into
// rows t*Cin + ci of [R][Cout], converting on the way. With AVX-512 it runs on 16 x 16 blocks:
// 16 source rows of 16 elements are loaded and converted, transposed in registers (64 shuffles)
// and stored as 16 64-byte row pieces, so both sides stream whole cache lines; edges and other
// builds use a scalar loop (the AVX2 build: the same on 8 x 8 blocks). Parallel over blocks of
// 16 output channels (disjoint columns).
#include "kernels/kernels.h"
#include "kernels/kvariant.h"

#include <string.h>
#if defined(__F16C__) && defined(__AVX__)
#    include <immintrin.h>
#endif
#ifdef _OPENMP
#    include <omp.h>
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
#if defined(__AVX512F__)
        for (; i + 16 <= n; i += 16) { // hardware f16 -> f32 (exact, subnormals included)
            const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * i));
            _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
        }
#endif
#if defined(__F16C__) && defined(__AVX__)
        for (; i + 8 <= n; i += 8) {
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

#if DF_KV_ONCE
void df_convert_to_f32_ref(float *dst, const void *src, df_dtype dtype, size_t n) {
    const unsigned char *p = (const unsigned char *)src;
    const size_t es = df_dtype_size(dtype);
    for (size_t i = 0; i < n; i++) {
        if (dtype == DF_DTYPE_F32) {
            memcpy(&dst[i], p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + es * i, 2);
            dst[i] = dtype == DF_DTYPE_F16 ? df_f16_to_f32(h) : df_bf16_to_f32(h);
        }
    }
}

void df_conv_weight_pack_ref(float *dst, const void *src, df_dtype dtype, int cout, int cin,
                             int k) {
    float *tmp = df_malloc((size_t)k * k * sizeof(float));
    DF_ASSERT(tmp != NULL);
    const size_t es = df_dtype_size(dtype);
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++) {
            const size_t off = ((size_t)co * cin + ci) * (size_t)(k * k);
            df_convert_to_f32_ref(tmp, (const unsigned char *)src + off * es, dtype,
                                  (size_t)(k * k));
            for (int t = 0; t < k * k; t++) dst[((size_t)t * cin + ci) * cout + co] = tmp[t];
        }
    df_free(tmp);
}
#endif

static inline float cvt1(const unsigned char *p, df_dtype dtype) {
    if (dtype == DF_DTYPE_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    if (dtype == DF_DTYPE_F16) return df_f16_to_f32(h);
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#if defined(__AVX512F__)
#    ifndef PACK_JB
#        define PACK_JB 64 // source columns per chunk
#    endif

// 16 consecutive elements at p as f32.
static inline __m512 load16(const unsigned char *p, df_dtype dtype) {
    if (dtype == DF_DTYPE_F32) return _mm512_loadu_ps((const void *)p);
    const __m256i h = _mm256_loadu_si256((const __m256i *)(const void *)p);
    if (dtype == DF_DTYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// r[i] (row i, 16 elements) -> r[j] = column j.
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#    define PD(x) _mm512_castps_pd(x)
#    define PS(x) _mm512_castpd_ps(x)
    for (int i = 0; i < 4; i++) { // rows 4i..4i+3 -> u[4i + c] holds column c (+4, +8, +12)
        r[4 * i + 0] = PS(_mm512_unpacklo_pd(PD(t[4 * i]), PD(t[4 * i + 2])));
        r[4 * i + 1] = PS(_mm512_unpackhi_pd(PD(t[4 * i]), PD(t[4 * i + 2])));
        r[4 * i + 2] = PS(_mm512_unpacklo_pd(PD(t[4 * i + 1]), PD(t[4 * i + 3])));
        r[4 * i + 3] = PS(_mm512_unpackhi_pd(PD(t[4 * i + 1]), PD(t[4 * i + 3])));
    }
#    undef PD
#    undef PS
    // r[4g + c] = [rows 4g..4g+3 of columns c | c+4 | c+8 | c+12] (128-bit lanes)
    for (int c = 0; c < 4; c++) {
        t[2 * c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);     // cols c, c+8 of rows 0..7
        t[2 * c + 1] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd); // cols c+4, c+12
        t[8 + 2 * c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        t[8 + 2 * c + 1] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm512_shuffle_f32x4(t[2 * c], t[8 + 2 * c], 0x88);
        r[c + 8] = _mm512_shuffle_f32x4(t[2 * c], t[8 + 2 * c], 0xdd);
        r[c + 4] = _mm512_shuffle_f32x4(t[2 * c + 1], t[8 + 2 * c + 1], 0x88);
        r[c + 12] = _mm512_shuffle_f32x4(t[2 * c + 1], t[8 + 2 * c + 1], 0xdd);
    }
}
#endif

#if !defined(__AVX512F__) && defined(__AVX2__) && defined(__F16C__)
#    define PACK_AVX2 1
#    ifndef PACK_JB
#        define PACK_JB 64 // source columns per chunk
#    endif
// 8 consecutive elements at p as f32.
static inline __m256 load8(const unsigned char *p, df_dtype dtype) {
    if (dtype == DF_DTYPE_F32) return _mm256_loadu_ps((const void *)p);
    const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)p);
    if (dtype == DF_DTYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// r[i] (row i, 8 elements) -> r[j] = column j.
static inline void transpose8(__m256 r[8]) {
    __m256 t[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    __m256 u[8];
    for (int i = 0; i < 2; i++) {
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xee);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xee);
    }
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}
#else
#    define PACK_AVX2 0
#endif

void df_conv_weight_pack_range(float *dst, const void *src, df_dtype dtype, int cout, int cin,
                               int k, int co0, int co1) {
    DF_ASSERT(dtype == DF_DTYPE_F32 || dtype == DF_DTYPE_F16 || dtype == DF_DTYPE_BF16);
    DF_ASSERT(cout > 0 && cin > 0 && k > 0 && 0 <= co0 && co0 <= co1 && co1 <= cout);
    const int kk = k * k, R = cin * kk; // source row: [Cin][k][k]
    const size_t es = df_dtype_size(dtype);
    const unsigned char *s = (const unsigned char *)src;
    int co = co0;
#if defined(__AVX512F__)
    // Column chunks of PACK_JB outer, 16-channel blocks inner: the stores of a chunk fill PACK_JB
    // destination rows left to right (few pages in flight), the loads take one or two cache
    // lines per source row.
    const int cfull = co0 + (co1 - co0) / 16 * 16; // end of the whole 16-channel blocks
    for (int j0 = 0; j0 < R; j0 += PACK_JB) {
        const int j1 = j0 + PACK_JB < R ? j0 + PACK_JB : R;
        const int ci0 = j0 / kk, t0 = j0 - ci0 * kk; // column j0 = ci0*kk + t0
        for (co = co0; co < cfull; co += 16) {
            const unsigned char *rows = s + (size_t)co * R * es; // 16 source rows
            int j = j0, ci = ci0, t = t0; // column j = ci*kk + t
            for (; j + 16 <= j1; j += 16) {
                __m512 r[16];
                for (int i = 0; i < 16; i++) r[i] = load16(rows + ((size_t)i * R + j) * es, dtype);
                transpose16(r);
                for (int c = 0; c < 16; c++) { // column j + c -> dst row t*Cin + ci
                    _mm512_storeu_ps(dst + ((size_t)t * cin + ci) * cout + co, r[c]);
                    if (++t == kk) t = 0, ci++;
                }
            }
            for (; j < j1; j++) {
                float *d = dst + ((size_t)t * cin + ci) * cout + co;
                for (int i = 0; i < 16; i++) d[i] = cvt1(rows + ((size_t)i * R + j) * es, dtype);
                if (++t == kk) t = 0, ci++;
            }
        }
    }
    co = cfull;
#elif PACK_AVX2
    // as above with two 8 x 8 blocks side by side (16 channels: whole 64-byte line stores)
    const int cfull = co0 + (co1 - co0) / 16 * 16;
    for (int j0 = 0; j0 < R; j0 += PACK_JB) {
        const int j1 = j0 + PACK_JB < R ? j0 + PACK_JB : R;
        const int ci0 = j0 / kk, t0 = j0 - ci0 * kk;
        for (co = co0; co < cfull; co += 16) {
            const unsigned char *rows = s + (size_t)co * R * es; // 16 source rows
            int j = j0, ci = ci0, t = t0;
            for (; j + 8 <= j1; j += 8) {
                __m256 r[8], q[8];
                for (int i = 0; i < 8; i++) r[i] = load8(rows + ((size_t)i * R + j) * es, dtype);
                for (int i = 0; i < 8; i++)
                    q[i] = load8(rows + ((size_t)(i + 8) * R + j) * es, dtype);
                transpose8(r);
                transpose8(q);
                for (int c = 0; c < 8; c++) {
                    float *d = dst + ((size_t)t * cin + ci) * cout + co;
                    _mm256_storeu_ps(d, r[c]);
                    _mm256_storeu_ps(d + 8, q[c]);
                    if (++t == kk) t = 0, ci++;
                }
            }
            for (; j < j1; j++) {
                float *d = dst + ((size_t)t * cin + ci) * cout + co;
                for (int i = 0; i < 16; i++) d[i] = cvt1(rows + ((size_t)i * R + j) * es, dtype);
                if (++t == kk) t = 0, ci++;
            }
        }
    }
    co = cfull;
#endif
    for (; co < co1; co++) { // remaining output channels, one source row each
        const unsigned char *row = s + (size_t)co * R * es;
        for (int j = 0; j < R; j++) {
            const int ci = j / kk, t = j - ci * kk;
            dst[((size_t)t * cin + ci) * cout + co] = cvt1(row + (size_t)j * es, dtype);
        }
    }
}

void df_conv_weight_pack(float *dst, const void *src, df_dtype dtype, int cout, int cin, int k) {
    DF_ASSERT(cout > 0 && cin > 0 && k > 0);
    const int nb = (cout + 15) / 16; // blocks of 16 output channels
    int nt = 1;
#ifdef _OPENMP
    if (!omp_in_parallel() && (size_t)cout * cin * k * k >= ((size_t)1 << 18))
        nt = omp_get_max_threads();
#endif
    (void)nt;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int b = 0; b < nb; b++) {
        const int c0 = 16 * b, c1 = c0 + 16 < cout ? c0 + 16 : cout;
        df_conv_weight_pack_range(dst, src, dtype, cout, cin, k, c0, c1);
    }
}
