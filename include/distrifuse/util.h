// distrifuse public API: process utilities the programs share with the library: compute
// threads, time, peak memory, and the library's log (stderr).
#ifndef DF_UTIL_H
#define DF_UTIL_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#    define DF_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#    define DF_PRINTF(a, b)
#endif

// Threads: one setting for OpenMP and OpenBLAS (the programs' -t N). n <= 0: all cores.
void df_set_threads(int n);
int df_get_threads(void);

double df_time_s(void);      // monotonic seconds
double df_peak_rss_mb(void); // VmHWM of this process in MiB (0 if unknown)

// Logging to stderr. Levels: 0 error, 1 warn, 2 info, 3 debug. Default 2 (info). Under MPI
// INFO lines are printed by rank 0 only, with a "[rR/N] " prefix.
enum { DF_LOG_ERROR = 0, DF_LOG_WARN = 1, DF_LOG_INFO = 2, DF_LOG_DEBUG = 3 };
void df_log_set_level(int level);
int df_log_get_level(void);
void df_log(int level, const char *fmt, ...) DF_PRINTF(2, 3);

#ifdef __cplusplus
}
#endif
#endif // DF_UTIL_H
