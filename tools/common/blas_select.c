// Linked into every distrifuse executable (CMake df_executable): picks OpenBLAS's fast kernels.
//
// OpenBLAS 0.3.21 (Debian 12, DYNAMIC_ARCH) does not recognise some newer Xeons (e.g. Sapphire
// Rapids under KVM) and falls back to its generic "Prescott" (SSE3) kernels, 4-5x slower than
// its SkylakeX/Haswell ones. The core type is read when libopenblas loads, so it cannot be
// changed later: before main() runs, this constructor re-executes the program once with
// OPENBLAS_CORETYPE=SkylakeX (AVX-512 CPUs) or Haswell (AVX2 CPUs). It does nothing when
// OPENBLAS_CORETYPE is already set, when OpenBLAS recognised the CPU, or when
// DF_KEEP_BLAS_CORETYPE is set. Runs before MPI_Init, so it is safe under mpirun.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void df_blas_select(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    const char *core = openblas_get_corename();
    if (getenv("OPENBLAS_CORETYPE") || getenv("DF_KEEP_BLAS_CORETYPE") || !core ||
        strcmp(core, "Prescott") != 0 || !argv)
        return;
    const char *want = NULL;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2")) want = "Haswell";
#endif
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);
    // exec failed: carry on with the slow kernels
    unsetenv("OPENBLAS_CORETYPE");
}
