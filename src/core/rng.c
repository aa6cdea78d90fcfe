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
#include <string.h>

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

// torch's float Box-Muller runs in its AVX2 kernel (normal_fill_16_AVX2) with the cephes-style
// log256_ps / sincos256_ps polynomials of avx_mathfun.h, built with FMA contraction. The scalar
// emulation below reproduces that arithmetic operation by operation (fmaf where the compiled
// kernel fuses), which matches the torch goldens bit for bit; every other operation is a
// separate statement so no compiler contracts it. A plain logf/sinf/cosf version differs from
// torch by 1 ulp in about 16% of the values.
static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

// natural log for x in (0, 1] (normal numbers; u1 = 1 - u is never 0 or subnormal here)
static float box_muller_log(float x) {
    const uint32_t bits = f32_bits(x);
    float e = (float)((int)(bits >> 23) - 0x7f);
    e = e + 1.0f;
    x = f32_from_bits((bits & ~0x7f800000u) | 0x3f000000u); // mantissa in [0.5, 1)
    if (x < 0.707106781186547524f) {
        e = e - 1.0f;
        x = x - 1.0f;
        x = x + f32_from_bits((bits & ~0x7f800000u) | 0x3f000000u);
    } else {
        x = x - 1.0f;
    }
    const float z = x * x;
    float y = 7.0376836292e-2f;
    y = fmaf(y, x, -1.1514610310e-1f);
    y = fmaf(y, x, 1.1676998740e-1f);
    y = fmaf(y, x, -1.2420140846e-1f);
    y = fmaf(y, x, 1.4249322787e-1f);
    y = fmaf(y, x, -1.6668057665e-1f);
    y = fmaf(y, x, 2.0000714765e-1f);
    y = fmaf(y, x, -2.4999993993e-1f);
    y = fmaf(y, x, 3.3333331174e-1f);
    y = y * x;
    const float eq1 = e * -2.12194440e-4f;
    y = fmaf(y, z, eq1);
    y = fmaf(-z, 0.5f, y);
    x = x + y;
    return fmaf(e, 0.693359375f, x);
}

// sine and cosine of x >= 0 (theta = 2*pi*u2 in [0, 2*pi))
static void box_muller_sincos(float x, float *s, float *c) {
    float y = x * 1.27323954473516f; // 4 / pi
    int j = (int)y;
    j = (j + 1) & ~1;
    y = (float)j;
    const uint32_t sign_sin = (uint32_t)(j & 4) << 29;
    const uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    const int poly_swap = (j & 2) != 0;
    x = fmaf(y, -0.78515625f, x); // extended-precision reduction by pi/4
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    const float z = x * x;
    float yc = 2.443315711809948e-5f;
    yc = fmaf(yc, z, -1.388731625493765e-3f);
    yc = fmaf(yc, z, 4.166664568298827e-2f);
    yc = yc * z;
    const float half_z = z * 0.5f;
    yc = fmaf(yc, z, -half_z);
    yc = yc + 1.0f;
    float ys = -1.9515295891e-4f;
    ys = fmaf(ys, z, 8.3321608736e-3f);
    ys = fmaf(ys, z, -1.6666654611e-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);
    const float sv = poly_swap ? yc : ys, cv = poly_swap ? ys : yc;
    *s = f32_from_bits(f32_bits(sv) ^ sign_sin);
    *c = f32_from_bits(f32_bits(cv) ^ sign_cos);
}

// Box-Muller over one block of 16 uniforms: d[j], d[j+8] -> (r cos th, r sin th).
void df_rng_normal_fill_16(float *d) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846); // broadcast as a float
    for (int j = 0; j < 8; j++) {
        const float u1 = 1.0f - d[j]; // [0,1) -> (0,1] for the log
        const float u2 = d[j + 8];
        const float lg = box_muller_log(u1);
        const float radius = sqrtf(-2.0f * lg);
        const float theta = two_pi * u2;
        float sn, cs;
        box_muller_sincos(theta, &sn, &cs);
        d[j] = radius * cs;
        d[j + 8] = radius * sn;
    }
}

// Reference twin: the textbook formula with libm (within ~1 ulp of the above).
void df_rng_normal_fill_16_ref(float *d) {
    const float two_pi = (float)(2.0 * 3.14159265358979323846);
    for (int j = 0; j < 8; j++) {
        const float u1 = 1.0f - d[j];
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
    for (size_t i = 0; i + 16 <= n; i += 16) df_rng_normal_fill_16(out + i);
    if (n % 16 != 0) {
        float *tail = out + n - 16; // [16] recomputed from fresh uniforms
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(r);
        df_rng_normal_fill_16(tail);
    }
}
