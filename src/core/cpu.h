// CPU feature detection and the run-time choice of the kernel variant.
//
// The hand-written vector kernels (src/kernels: attention, softmax/exp, norms, activations,
// conversion, conv packing, im2col) are compiled three times into one binary: a portable build
// (baseline x86-64 / any target: "ref"), an AVX2+FMA+F16C build (x86-64-v3: "avx2") and an
// AVX-512 F/BW/DQ/VL/CD build (x86-64-v4: "avx512"). One of them runs, chosen once: the best the
// CPU and the OS support (cpuid, plus xgetbv for the OS-enabled register state), unless the
// program forces one (df_cpu_set_variant; the programs' --cpu option). The library reads no
// environment variable. Under MPI all ranks run the lowest variant any rank supports
// (df_mpi_init agrees on it with df_cpu_limit), so replicated work computes in the same float
// order everywhere.
//
// "ref" is the portable C of the same fast (tiled, polynomial) kernels, not the plain-loop `_ref`
// twins of kernels.h that the tests compare against.
#ifndef DF_CORE_CPU_H
#define DF_CORE_CPU_H

// df_cpu_variant (ordered: a higher variant needs a superset of the lower one's instructions)
// and the functions the programs use are public: distrifuse/engine.h.
#include "distrifuse/engine.h"

// Feature flags of this CPU (as enabled by the OS).
typedef struct df_cpu_features {
    int avx2, fma, f16c, bmi2;                      // + avx, bmi1, lzcnt, movbe, OS ymm state
    int avx512f, avx512bw, avx512dq, avx512vl, avx512cd; // + OS zmm/opmask state
    int avx512_bf16, avx512_vnni, amx_bf16;
    int family, model;
    char vendor[13];
    char brand[49];
} df_cpu_features;

const df_cpu_features *df_cpu_get_features(void);
// "ref", "avx2", "avx512" ("auto" for DF_CPU_AUTO).
const char *df_cpu_variant_name(df_cpu_variant v);
// Parses "auto|avx2|avx512|ref"; returns 1 and sets *out if known, else 0.
int df_cpu_variant_parse(const char *s, df_cpu_variant *out);
// 1 if this binary has the variant and the CPU/OS can run it.
int df_cpu_supported(df_cpu_variant v);
// Best supported variant (ignores the limit).
df_cpu_variant df_cpu_best(void);
// Selects the kernel variant. DF_CPU_AUTO: the best supported within the limit. Returns 0, or
// -1 (nothing changed) if the CPU lacks the variant. Call it before the kernels run (not while
// other threads are inside kernels).
int df_cpu_set_variant(df_cpu_variant v);
// Lowers the limit for DF_CPU_AUTO (and the current variant if above it).
void df_cpu_limit(df_cpu_variant max);
// The variant the kernels run (DF_CPU_AUTO resolved on first use).
df_cpu_variant df_cpu_variant_get(void);
// 1 if AVX512_BF16 (vdpbf16ps) is usable (AVX-512 state enabled too).
int df_cpu_has_bf16(void);
// --compute bf16 under MPI: df_mpi_init calls df_cpu_limit_bf16(0) on every rank when some rank
// lacks AVX512_BF16 (all ranks then compute in f32); df_cpu_bf16_allowed() is 0 after it.
void df_cpu_limit_bf16(int allow);
int df_cpu_bf16_allowed(void);
// One line for logs / --version: "avx512 (AMD EPYC ...; avx2 avx512 avx512_bf16)".
const char *df_cpu_describe(void);

// For the programs: applies a --cpu NAME value. Returns 0 on success; on an unknown name or a
// variant the CPU lacks writes one line naming the problem to `err` and returns -1 (the caller
// exits 2).
int df_cpu_apply_option(const char *name, char *err, int errlen);

#endif // DF_CORE_CPU_H
