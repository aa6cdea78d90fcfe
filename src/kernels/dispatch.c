// The dispatched kernels df_X (kernels.h): each calls df_X_<variant> for the variant chosen once
// at start (core/cpu.h). Variants this build lacks (non-x86 targets) fall back to generic.
#include "core/cpu.h"
#include "kernels/kvariant.h"

#if defined(DF_KV_X86)
#    define DF_KV_WRAP(name, params, args)                                                     \
        void name params {                                                                     \
            switch (df_cpu_variant_get()) {                                                    \
            case DF_CPU_AVX512: name##_avx512 args; return;                                    \
            case DF_CPU_AVX2: name##_avx2 args; return;                                        \
            default: name##_generic args; return;                                              \
            }                                                                                  \
        }
#else
#    define DF_KV_WRAP(name, params, args)                                                     \
        void name params { name##_generic args; }
#endif
DF_KERNEL_LIST(DF_KV_WRAP)
