// Kernel variants (see core/cpu.h): the files listed in src/kernels/variants.cmake are compiled
// once per variant with DF_KVARIANT = generic | avx2 | avx512 and that variant's ISA flags. This
// header, included by each of them right after kernels.h, renames their public fast kernels
// df_X -> df_X_<variant>; src/kernels/dispatch.c defines df_X, which calls the variant
// df_cpu_variant_get() names. The plain-loop `_ref` twins and the few helpers that are not
// dispatched are compiled once, in the generic build (DF_KV_ONCE is 1 there, else 0).
//
// DF_KERNEL_LIST is the single list of dispatched kernels (name, parameters, arguments).
#ifndef DF_KERNELS_KVARIANT_H
#define DF_KERNELS_KVARIANT_H

#include "kernels/gemm_bf16.h"
#include "kernels/kernels.h"

#define DF_KERNEL_LIST(X)                                                                      \
    X(df_convert_to_f32, (float *dst, const void *src, df_dtype dtype, size_t n),              \
      (dst, src, dtype, n))                                                                    \
    X(df_conv_weight_pack,                                                                     \
      (float *dst, const void *src, df_dtype dtype, int cout, int cin, int k),                 \
      (dst, src, dtype, cout, cin, k))                                                         \
    X(df_conv_weight_pack_range,                                                               \
      (float *dst, const void *src, df_dtype dtype, int cout, int cin, int k, int co0,         \
       int co1),                                                                               \
      (dst, src, dtype, cout, cin, k, co0, co1))                                               \
    X(df_conv2d,                                                                               \
      (float *y, const float *x, const float *top, const float *bot, const float *w,           \
       const float *bias, int B, int H, int W, int cin, int cout, int k, int stride),          \
      (y, x, top, bot, w, bias, B, H, W, cin, cout, k, stride))                                \
    X(df_conv2d_winograd,                                                                      \
      (float *y, const float *x, const float *top, const float *bot, const float *w,           \
       const float *bias, int B, int H, int W, int cin, int cout, int m),                      \
      (y, x, top, bot, w, bias, B, H, W, cin, cout, m))                                        \
    X(df_conv2d_bf16,                                                                          \
      (float *y, const float *x, const float *top, const float *bot, const df_bf16_mat *w,     \
       const float *bias, int B, int H, int W, int cin, int cout, int stride),                 \
      (y, x, top, bot, w, bias, B, H, W, cin, cout, stride))                                   \
    X(df_group_norm_stats, (double *stats, const float *x, int T, int C, int G),               \
      (stats, x, T, C, G))                                                                     \
    X(df_group_norm_apply,                                                                     \
      (float *y, const float *x, const float *mean, const float *rstd, const float *gamma,     \
       const float *beta, int T, int C, int G, int silu),                                      \
      (y, x, mean, rstd, gamma, beta, T, C, G, silu))                                          \
    X(df_group_norm,                                                                           \
      (float *y, const float *x, const float *gamma, const float *beta, int B, int T, int C,   \
       int G, float eps, int silu),                                                            \
      (y, x, gamma, beta, B, T, C, G, eps, silu))                                              \
    X(df_layer_norm,                                                                           \
      (float *y, const float *x, const float *gamma, const float *beta, int T, int C,          \
       float eps),                                                                             \
      (y, x, gamma, beta, T, C, eps))                                                          \
    X(df_silu, (float *y, const float *x, size_t n), (y, x, n))                                \
    X(df_gelu, (float *y, const float *x, size_t n), (y, x, n))                                \
    X(df_quick_gelu, (float *y, const float *x, size_t n), (y, x, n))                          \
    X(df_geglu, (float *y, const float *x, int T, int N), (y, x, T, N))                        \
    X(df_add, (float *y, const float *a, const float *b, size_t n), (y, a, b, n))              \
    X(df_softmax, (float *x, int R, int N), (x, R, N))                                         \
    X(df_attention,                                                                            \
      (float *out, int ldo, const float *q, int ldq, const float *k, int ldk, const float *v,  \
       int ldv, int Tq, int Tk, int NH, int HS),                                               \
      (out, ldo, q, ldq, k, ldk, v, ldv, Tq, Tk, NH, HS))

// Prototypes of every variant.
#define DF_KV_DECL(name, params, args)                                                         \
    void name##_generic params;                                                                \
    void name##_avx2 params;                                                                   \
    void name##_avx512 params;
DF_KERNEL_LIST(DF_KV_DECL)
#undef DF_KV_DECL

#endif // DF_KERNELS_KVARIANT_H

// Inside a variant build: rename the public fast kernels (outside the include guard on purpose:
// harmless when repeated).
#ifdef DF_KVARIANT
#    define DF_KV_CAT2(a, b) a##_##b
#    define DF_KV_CAT(a, b) DF_KV_CAT2(a, b)
#    define DF_KV(name) DF_KV_CAT(name, DF_KVARIANT)
#    define df_convert_to_f32 DF_KV(df_convert_to_f32)
#    define df_conv_weight_pack DF_KV(df_conv_weight_pack)
#    define df_conv_weight_pack_range DF_KV(df_conv_weight_pack_range)
#    define df_conv2d DF_KV(df_conv2d)
#    define df_conv2d_winograd DF_KV(df_conv2d_winograd)
#    define df_conv2d_bf16 DF_KV(df_conv2d_bf16)
#    define df_group_norm_stats DF_KV(df_group_norm_stats)
#    define df_group_norm_apply DF_KV(df_group_norm_apply)
#    define df_group_norm DF_KV(df_group_norm)
#    define df_layer_norm DF_KV(df_layer_norm)
#    define df_silu DF_KV(df_silu)
#    define df_gelu DF_KV(df_gelu)
#    define df_quick_gelu DF_KV(df_quick_gelu)
#    define df_geglu DF_KV(df_geglu)
#    define df_add DF_KV(df_add)
#    define df_softmax DF_KV(df_softmax)
#    define df_attention DF_KV(df_attention)
#endif

// Builds without an FMA unit (the generic variant on baseline x86-64): fmaf would be a slow exact
// libm call that blocks vectorization; the polynomials here get their accuracy from split
// constants, so a plain multiply-add serves.
#if !defined(__FMA__) && !defined(DF_KV_NO_FMAF_MACRO)
#    include <math.h>
#    define fmaf(a, b, c) ((a) * (b) + (c))
#endif
