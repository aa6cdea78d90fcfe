// Helpers of the libFuzzer targets (fuzz/fuzz_*.c, `make fuzz`): the input as a file (memfd,
// so no disk I/O) and as a NUL-terminated string. Any DF_ERR_* result is a normal outcome; the
// targets look for crashes, leaks and undefined behaviour (ASan + UBSan) and for broken
// contracts (a failure without a message, a success with inconsistent output), which abort().
#ifndef DF_FUZZ_UTIL_H
#define DF_FUZZ_UTIL_H

#define _GNU_SOURCE
#include "distrifuse/status.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

// The path of a file (memfd) holding data[0..size); one per process, rewritten on every call.
static inline const char *fuzz_file(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("df-fuzz", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t o = 0;
    while (o < size) {
        ssize_t k = pwrite(fd, data + o, size - o, (off_t)o);
        if (k <= 0) abort();
        o += (size_t)k;
    }
    return path;
}

// malloc'ed NUL-terminated copy of data (free it).
static inline char *fuzz_str(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

// A failing call must leave a message.
static inline void fuzz_check_status(df_status st) {
    if (st != DF_OK && !*df_last_error()) {
        fprintf(stderr, "failure %s without a message\n", df_status_str(st));
        abort();
    }
    df_clear_error();
}

#endif // DF_FUZZ_UTIL_H
