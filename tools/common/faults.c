// SIGBUS on memory-mapped model files, and the rank watchdog (faults.h).
#include "faults.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char g_prog[64] = "distrifuse";
static char g_prefix[64] = "";

// ---- async-signal-safe output

static void put(char *buf, size_t cap, size_t *n, const char *s) {
    while (*s && *n + 1 < cap) buf[(*n)++] = *s++;
    buf[*n] = 0;
}

static void put_u64(char *buf, size_t cap, size_t *n, uint64_t v) {
    char d[24];
    int k = 0;
    do d[k++] = (char)('0' + v % 10), v /= 10;
    while (v);
    while (k && *n + 1 < cap) buf[(*n)++] = d[--k];
    buf[*n] = 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// Parses "start-end perms offset dev inode path" of one /proc/self/maps line; 1 if addr is in
// [start, end) and the mapping has a path (copied into path).
static int maps_line(const char *l, uintptr_t addr, char *path, size_t cap, uint64_t *off) {
    uintptr_t a = 0, b = 0;
    uint64_t o = 0;
    int v;
    while ((v = hexval(*l)) >= 0) a = a * 16 + (uintptr_t)v, l++;
    if (*l++ != '-') return 0;
    while ((v = hexval(*l)) >= 0) b = b * 16 + (uintptr_t)v, l++;
    if (addr < a || addr >= b) return 0;
    for (int field = 0; field < 4; field++) { // perms, offset, dev, inode
        while (*l == ' ') l++;
        if (field == 1)
            while ((v = hexval(*l)) >= 0) o = o * 16 + (uint64_t)v, l++;
        while (*l && *l != ' ') l++;
    }
    while (*l == ' ') l++;
    if (*l != '/') return 0;
    size_t n = 0;
    while (l[n] && l[n] != '\n' && n + 1 < cap) path[n] = l[n], n++;
    path[n] = 0;
    *off = o + (uint64_t)(addr - a);
    return 1;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    char path[1024] = "", line[4096], msg[1400];
    uint64_t off = 0;
    int found = 0;
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd >= 0) {
        size_t n = 0;
        ssize_t k;
        char c;
        while (!found && (k = read(fd, &c, 1)) == 1) { // byte by byte: no stdio in a handler
            if (c != '\n' && n + 1 < sizeof line) {
                line[n++] = c;
                continue;
            }
            line[n] = 0;
            found = maps_line(line, (uintptr_t)si->si_addr, path, sizeof path, &off);
            n = 0;
        }
        close(fd);
    }
    size_t n = 0;
    put(msg, sizeof msg, &n, g_prefix);
    put(msg, sizeof msg, &n, g_prog);
    if (found) {
        put(msg, sizeof msg, &n, ": error: model file '");
        put(msg, sizeof msg, &n, path);
        put(msg, sizeof msg, &n, "' was truncated or replaced while in use (SIGBUS reading "
                                 "offset ");
        put_u64(msg, sizeof msg, &n, off);
        put(msg, sizeof msg, &n, ")\n");
    } else {
        put(msg, sizeof msg, &n, ": error: bus error (SIGBUS): a memory-mapped file was "
                                 "truncated or is unreadable\n");
    }
    if (write(2, msg, n) < 0) { /* nothing left to do */
    }
    _exit(1);
}

void df_tool_faults_init(const char *prog, const char *prefix) {
    snprintf(g_prog, sizeof g_prog, "%s", prog ? prog : "distrifuse");
    snprintf(g_prefix, sizeof g_prefix, "%s", prefix ? prefix : "");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

// ---- watchdog

static double g_timeout;
static _Atomic int64_t g_last_ms;
static atomic_int g_armed;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *watchdog(void *arg) {
    (void)arg;
    const struct timespec tick = {0, 50 * 1000000};
    for (;;) {
        nanosleep(&tick, NULL);
        if (!atomic_load(&g_armed)) continue;
        if ((double)(now_ms() - atomic_load(&g_last_ms)) <= g_timeout * 1000.0) continue;
        char msg[512];
        snprintf(msg, sizeof msg,
                 "%s%s: error: no step finished for %g s: another rank died or hangs "
                 "(--rank-timeout %g)\n",
                 g_prefix, g_prog, g_timeout, g_timeout);
        if (write(2, msg, strlen(msg)) < 0) { /* exiting anyway */
        }
        _exit(1);
    }
    return NULL;
}

int df_tool_watchdog_start(double timeout_s) {
    if (!(timeout_s > 0)) return 0;
    g_timeout = timeout_s;
    atomic_store(&g_armed, 0);
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, NULL) != 0) return -1;
    pthread_detach(t);
    return 0;
}

void df_tool_watchdog_arm(void) {
    atomic_store(&g_last_ms, now_ms());
    atomic_store(&g_armed, 1);
}

void df_tool_watchdog_beat(void) { atomic_store(&g_last_ms, now_ms()); }

void df_tool_watchdog_disarm(void) { atomic_store(&g_armed, 0); }
