// PyTorch-compatible CPU random numbers: torch.Generator("cpu").manual_seed(seed) + torch.randn.
// MT19937 seeded with init_genrand(seed); normal sampling exactly as PyTorch's CPU kernel (the
// 16-element block rule for numel >= 16, the double-precision scalar path below 16); one
// generator used for several calls continues its stream. See ../shared/golden/README.md `rng/`.
#ifndef DF_CORE_RNG_H
#define DF_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct df_rng {
    uint32_t mt[624];
    int mti;
    // cached second normal of the scalar (numel < 16) path, as torch's generator keeps it
    int has_next_normal;
    double next_normal;
} df_rng;

// manual_seed(seed): init_genrand with the low 32 bits of seed (ATen's mt19937 keeps uint32 state
// words, so seeds >= 2^32 alias seed & 0xffffffff); clears the cached normal.
void df_rng_seed(df_rng *r, uint64_t seed);
uint32_t df_rng_u32(df_rng *r);
// torch's random64(): two 32-bit draws, the first one in the high half.
uint64_t df_rng_u64(df_rng *r);
// One sample of at::normal_distribution<double> (53-bit uniforms, Box-Muller; the second value
// of each pair is cached in r and returned by the next call). The numel < 16 path of randn.
double df_rng_normal_f64(df_rng *r);
// torch.randn(n) into out (f32), continuing r's stream. Bit-identical to torch 1.13 on x86
// (AVX2 kernel): the float Box-Muller emulates its polynomial log/sincos operation by operation.
void df_rng_randn(df_rng *r, float *out, size_t n);
// One Box-Muller block of randn: d[j], d[j+8] (uniforms in [0,1), j < 8) -> normals.
void df_rng_normal_fill_16(float *d);
// Plain libm twin of df_rng_normal_fill_16 (within about 1 ulp of it).
void df_rng_normal_fill_16_ref(float *d);

#endif // DF_CORE_RNG_H
