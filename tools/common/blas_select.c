// Linked into every distrifuse executable (CMake df_executable): sets up the thread runtimes
// before main() runs, by re-executing the program once with better environment settings.
//
// 1. OpenBLAS 0.3.21 (Debian 12, DYNAMIC_ARCH) does not recognise some newer Xeons (e.g.
//    Sapphire Rapids under KVM) and falls back to its generic "Prescott" (SSE3) kernels, 4-5x
//    slower than its SkylakeX/Haswell ones: set OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell.
// 2. Debian's OpenBLAS is the pthreads build; OpenMP threads spinning between our parallel loops
//    steal the cores its threads need (steps measured up to 10x slower): set
//    OMP_WAIT_POLICY=passive.
// Both are read when the libraries load, so they cannot be changed later from main(). Variables
// the user set are kept; DF_KEEP_ENV=1 disables the whole mechanism. Runs before MPI_Init, so it
// is safe under mpirun.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void df_env_select(int argc, char **argv, char **envp) {
    (void)argc;
    (void)envp;
    if (!argv || getenv("DF_KEEP_ENV") || getenv("DF_ENV_SELECTED")) return;
    int again = 0;
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && core && strcmp(core, "Prescott") == 0) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) setenv("OPENBLAS_CORETYPE", "SkylakeX", 1), again = 1;
        else if (__builtin_cpu_supports("avx2")) setenv("OPENBLAS_CORETYPE", "Haswell", 1), again = 1;
#endif
    }
    if (!getenv("OMP_WAIT_POLICY")) setenv("OMP_WAIT_POLICY", "passive", 1), again = 1;
    if (!again) return;
    setenv("DF_ENV_SELECTED", "1", 1); // never loop
    execv("/proc/self/exe", argv);
    // exec failed: carry on as is
}
