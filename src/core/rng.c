// PyTorch-compatible CPU random numbers (see rng.h and ../shared/golden/README.md `rng/`).
//
// MT19937 as in ATen's mt19937_engine: init_genrand with the low 32 bits of the 64-bit seed
// (torch stores the state words as uint32), the state regenerated lazily on the first draw.
// torch.randn on a CPU float32 tensor:
//   numel >= 16: normal_fill: every slot gets a 24-bit uniform, then Box-Muller over blocks of 16
//                (u1 = 1 - d[j], u2 = d[j+8], j < 8); a ragged tail redraws 16 fresh uniforms
//                into the last 16 slots and transforms them as one block.
//   numel < 16:  the serial kernel with at::normal_distribution<double>: 53-bit uniforms, one
//                Box-Muller pair per two outputs, the sine half cached in the generator.
#include "core/rng.h"

#include <math.h>

#define MT_N 624
#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UPPER_MASK 0x80000000u
#define MT_LOWER_MASK 0x7fffffffu

void df_rng_seed(df_rng *r, uint64_t seed) {
    r->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int j = 1; j < MT_N; j++) {
        const uint32_t prev = r->mt[j - 1];
        r->mt[j] = 1812433253u * (prev ^ (prev >> 30)) + (uint32_t)j;
    }
    r->mti = MT_N; // regenerate on the first draw
    r->has_next_normal = 0;
    r->next_normal = 0.0;
}

static void mt_next_state(df_rng *r) {
    uint32_t *mt = r->mt;
    int k;
    for (k = 0; k < MT_N - MT_M; k++) {
        const uint32_t y = (mt[k] & MT_UPPER_MASK) | (mt[k + 1] & MT_LOWER_MASK);
        mt[k] = mt[k + MT_M] ^ (y >> 1) ^ ((y & 1u) ? MT_MATRIX_A : 0u);
    }
    for (; k < MT_N - 1; k++) {
        const uint32_t y = (mt[k] & MT_UPPER_MASK) | (mt[k + 1] & MT_LOWER_MASK);
        mt[k] = mt[k + (MT_M - MT_N)] ^ (y >> 1) ^ ((y & 1u) ? MT_MATRIX_A : 0u);
    }
    const uint32_t y = (mt[MT_N - 1] & MT_UPPER_MASK) | (mt[0] & MT_LOWER_MASK);
    mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ ((y & 1u) ? MT_MATRIX_A : 0u);
    r->mti = 0;
}

uint32_t df_rng_u32(df_rng *r) {
    if (r->mti >= MT_N) mt_next_state(r);
    uint32_t y = r->mt[r->mti++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return y;
}

uint64_t df_rng_u64(df_rng *r) {
    const uint64_t hi = df_rng_u32(r);
    const uint64_t lo = df_rng_u32(r);
    return (hi << 32) | lo;
}

// at::uniform_real_distribution<float>(0, 1): 24 random bits.
static float uniform_f32(df_rng *r) {
    return (float)(df_rng_u32(r) & 0xffffffu) * (1.0f / 16777216.0f);
}

// at::uniform_real_distribution<double>(0, 1): 53 random bits of a 64-bit draw.
static double uniform_f64(df_rng *r) {
    return (double)(df_rng_u64(r) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Box-Muller over one block of 16 uniforms: d[j], d[j+8] -> (r cos th, r sin th).
static void normal_fill_16(float *d) {
    // torch's AVX2 kernel broadcasts 2*pi as a float and multiplies in float
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        const float u1 = 1.0f - d[j]; // [0,1) -> (0,1] for the log
        const float u2 = d[j + 8];
        const float radius = sqrtf(-2.0f * logf(u1));
        const float theta = two_pi * u2;
        d[j] = radius * cosf(theta);
        d[j + 8] = radius * sinf(theta);
    }
}

double df_rng_normal_f64(df_rng *r) {
    if (r->has_next_normal) {
        r->has_next_normal = 0;
        return r->next_normal;
    }
    const double u1 = uniform_f64(r);
    const double u2 = uniform_f64(r);
    const double radius = sqrt(-2.0 * log(1.0 - u2));
    const double theta = 2.0 * 3.14159265358979323846 * u1;
    r->next_normal = radius * sin(theta);
    r->has_next_normal = 1;
    return radius * cos(theta);
}

void df_rng_randn(df_rng *r, float *out, size_t n) {
    if (n < 16) {
        for (size_t i = 0; i < n; i++) out[i] = (float)df_rng_normal_f64(r);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = uniform_f32(r);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16; // [16] recomputed from fresh uniforms
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(r);
        normal_fill_16(tail);
    }
}
