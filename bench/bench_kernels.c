// Kernel benchmark: GFLOP/s of the GEMM-heavy kernels against the cblas_sgemm ceiling.
//
//   df-bench-kernels [-t N] [--quick] [--reps R] [--cpu auto|avx2|avx512|ref]
//
// Measures, with N threads (default 1): cblas_sgemm M=4096 N=K=1280 (the ceiling), df_conv2d 3x3
// at the SDXL UNet shapes (B=1) 128x128x320, 64x64x640, 32x32x1280 (Cin = Cout), df_linear
// 4096x640 -> 5120 and df_attention with 4096 tokens, 10 heads x 64, plus informational rows
// (SD1.5 attention 8 x 40, 1x1 and stride-2 convs, direct / Winograd F2 / F4 at the SD 1.5
// UNet 3x3 shapes with B = 2: winograd_* keys, speedups and errors vs the direct conv; with
// AVX512_BF16 the bf16 GEMM rows). Each case runs R timed calls (default 5)
// after one warm-up call, every call paired with a ceiling call right before or after it. This
// VM's sgemm rate drifts by up to 2x within seconds (even by CPU time, with no other process
// running), so each row's best is compared with the best of its own paired ceiling calls (same
// sample count, same stretch of time); ratios against the best ceiling of the whole run
// ("run_best") are printed too. Prints a table, then as the last line one JSON object
// (sgemm_gflops, conv3x3_ratio_min, linear_ratio, attention_ratio, threads, per-shape figures,
// run_best, and for 1 thread the same by CPU time).
//
// OpenBLAS 0.3.21 (Debian 12, DYNAMIC_ARCH) does not recognise some newer Xeons (e.g. under KVM)
// and falls back to its "Prescott" (SSE3) kernels, 4-5x slower than its SkylakeX/Haswell ones.
// Every distrifuse program then re-executes itself with OPENBLAS_CORETYPE=SkylakeX (AVX-512) or
// Haswell (AVX2) before main (tools/common/blas_select.c; DF_KEEP_BLAS_CORETYPE=1 measures the
// library's own choice). The JSON line reports the BLAS core in use ("blas_core").
#include "core/core.h"
#include "core/cpu.h"
#include "kernels/gemm_bf16.h"
#include "kernels/kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// df_attention is implemented in src/kernels/attention.c (another module); while that file does
// not exist yet the benchmark reports the attention row as missing instead of failing to link.
#if defined(__has_include)
#    if __has_include("kernels/attention.c")
#        define HAVE_ATTENTION 1
#    endif
#endif
#ifndef HAVE_ATTENTION
#    define HAVE_ATTENTION 0
#endif

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;

static float *rand_buf(size_t n, float scale) {
    float *p = df_malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "df-bench-kernels: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        p[i] = scale * (float)((double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    return p;
}

typedef struct bench_row {
    char name[48];
    char key[32];
    double flops;
    double best_s;     // best wall time
    double best_cpu_s; // best process CPU time (meaningful for 1 thread on a loaded machine)
    double gflops;
    // best wall / CPU time of the ceiling calls paired with this row's calls
    double ceil_s, ceil_cpu_s;
} bench_row;

typedef void (*bench_fn)(void *ctx);

static double cpu_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// One timed call: lowers row->best_s / best_cpu_s; returns wall (and *cpu) seconds.
static double time_one(bench_fn fn, void *ctx, bench_row *row, double *cpu) {
    const double c0 = cpu_time_s(), t0 = df_time_s();
    fn(ctx);
    const double dt = df_time_s() - t0, dc = cpu_time_s() - c0;
    if (dt < row->best_s) row->best_s = dt;
    if (dc < row->best_cpu_s) row->best_cpu_s = dc;
    *cpu = dc;
    return dt;
}

// The ceiling case (set in main): every timed call of another row is paired with one of it.
static bench_fn g_ceil_fn;
static void *g_ceil_ctx;
static bench_row *g_ceil_row;

// `reps` timed calls after one warm-up call, each next to a ceiling call (alternating before /
// after), recording the best time of each side: the row's ratio is its best against the best of
// its own paired ceiling calls, the same number of samples over the same stretch of time. (This
// VM's sgemm rate drifts by up to 2x within a second, even by CPU time with no other process
// running; against the best ceiling of the whole run, a row with fewer samples than the ceiling
// would be measured against luckier moments.)
static void time_best(bench_fn fn, void *ctx, int reps, bench_row *row) {
    fn(ctx);
    row->ceil_s = row->ceil_cpu_s = 1e30;
    for (int r = 0; r < reps; r++) {
        double kc, cc, cw;
        if (r % 2 == 0) {
            time_one(fn, ctx, row, &kc);
            cw = time_one(g_ceil_fn, g_ceil_ctx, g_ceil_row, &cc);
        } else {
            cw = time_one(g_ceil_fn, g_ceil_ctx, g_ceil_row, &cc);
            time_one(fn, ctx, row, &kc);
        }
        if (cw < row->ceil_s) row->ceil_s = cw;
        if (cc < row->ceil_cpu_s) row->ceil_cpu_s = cc;
    }
}

static bench_row *new_row(bench_row *rows, int *nrows, const char *name, const char *key) {
    bench_row *r = &rows[(*nrows)++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->key, sizeof r->key, "%s", key);
    r->best_s = r->best_cpu_s = 1e30;
    return r;
}

// ---------------------------------------------------------------------------------------------
// Cases

typedef struct sgemm_ctx {
    int M, N, K;
    float *a, *b, *c;
} sgemm_ctx;

static void run_sgemm(void *p) {
    sgemm_ctx *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->M, c->N, c->K, 1.0f, c->a, c->K,
                c->b, c->N, 0.0f, c->c, c->N);
}

typedef struct conv_ctx {
    int H, W, cin, cout, k, stride;
    float *x, *top, *bot, *w, *bias, *y;
    int B, wino; // the Winograd rows: batch, tile size (0: direct)
} conv_ctx;

static void run_conv(void *p) {
    conv_ctx *c = p;
    if (c->wino)
        df_conv2d_winograd(c->y, c->x, c->top, c->bot, c->w, c->bias, c->B, c->H, c->W, c->cin,
                           c->cout, c->wino);
    else
        df_conv2d(c->y, c->x, c->top, c->bot, c->w, c->bias, c->B ? c->B : 1, c->H, c->W,
                  c->cin, c->cout, c->k, c->stride);
}

typedef struct linear_ctx {
    int M, K, N;
    float *x, *w, *b, *y;
} linear_ctx;

static void run_linear(void *p) {
    linear_ctx *c = p;
    df_linear(c->y, c->x, c->w, c->b, c->M, c->K, c->N, 0);
}

// bf16 rows (--compute bf16, gemm_bf16.h): the weights packed once outside the timed calls.
typedef struct bf16_ctx {
    int M, K, N, H, W, cin; // conv when H > 0 (3x3 stride 1, N = Cout), else linear M x K -> N
    float *x, *b, *y;
    df_bf16_mat w;
    uint16_t *wp;
} bf16_ctx;

static void run_bf16(void *p) {
    bf16_ctx *c = p;
    if (c->H > 0)
        df_conv2d_bf16(c->y, c->x, NULL, NULL, &c->w, c->b, 1, c->H, c->W, c->cin, c->N, 1);
    else
        df_linear_bf16(c->y, c->x, &c->w, c->b, c->M, c->K, c->N, 0);
}

// conv (hw > 0: hw x hw x ch -> ch) or linear M x K -> N.
static void bench_bf16(bench_row *row, int hw, int ch, int M, int K, int N, int reps) {
    bf16_ctx c;
    memset(&c, 0, sizeof c);
    if (hw > 0) c.H = c.W = hw, c.cin = ch, c.M = hw * hw, c.K = 9 * ch, c.N = ch;
    else c.M = M, c.K = K, c.N = N;
    c.x = rand_buf((size_t)c.M * (hw > 0 ? ch : K), 1.0f);
    float *wf = rand_buf((size_t)c.K * c.N, 0.05f); // conv: HWIO [K][N]; linear: [N][K]
    c.wp = df_malloc(df_bf16_mat_elems(c.K, c.N) * sizeof(uint16_t));
    df_bf16_pack(c.wp, wf, hw > 0 ? c.N : c.K, hw > 0 ? 0 : 1, c.K, c.N, &c.w);
    df_free(wf);
    c.b = rand_buf((size_t)c.N, 0.1f);
    c.y = rand_buf((size_t)c.M * c.N, 0.0f);
    row->flops = 2.0 * c.M * (double)c.K * c.N;
    time_best(run_bf16, &c, reps, row);
    df_free(c.x);
    df_free(c.wp);
    df_free(c.b);
    df_free(c.y);
}

#if HAVE_ATTENTION
typedef struct attn_ctx {
    int T, NH, HS;
    float *q, *k, *v, *o;
} attn_ctx;

static void run_attn(void *p) {
    attn_ctx *c = p;
    const int C = c->NH * c->HS;
    df_attention(c->o, C, c->q, C, c->k, C, c->v, C, c->T, c->T, c->NH, c->HS);
}
#endif

static void bench_conv(bench_row *row, int H, int W, int cin, int cout, int k, int stride,
                       int reps) {
    conv_ctx c = {H, W, cin, cout, k, stride, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0};
    const int Ho = stride == 1 ? H : (H + 1) / 2, Wo = stride == 1 ? W : (W + 1) / 2;
    c.x = rand_buf((size_t)H * W * cin, 1.0f);
    c.w = rand_buf((size_t)k * k * cin * cout, 0.05f);
    c.bias = rand_buf((size_t)cout, 0.1f);
    c.y = rand_buf((size_t)Ho * Wo * cout, 0.0f);
    row->flops = 2.0 * Ho * Wo * (double)k * k * cin * cout;
    time_best(run_conv, &c, reps, row);
    df_free(c.x);
    df_free(c.w);
    df_free(c.bias);
    df_free(c.y);
}

// Winograd rows: one SD 1.5 UNet 3x3 conv shape (B = 2, the CFG batch, Cin = Cout) three times:
// direct (df_conv2d), F(2x2,3x3) and F(4x4,3x3) (df_conv2d_winograd), rows[0..2]; FLOPs counted
// as the direct conv's (so GFLOP/s are effective rates). err[m] = {max |y - y_direct| /
// rms(y_direct), rel-L2} of the tile sizes m = 2, 4 against the direct conv.
static void bench_wino(bench_row *rows, int H, int W, int ch, int reps, double err[5][2]) {
    const int B = 2;
    conv_ctx c = {H, W, ch, ch, 3, 1, NULL, NULL, NULL, NULL, NULL, NULL, B, 0};
    const size_t ny = (size_t)B * H * W * ch;
    c.x = rand_buf(ny, 1.0f);
    c.w = rand_buf((size_t)9 * ch * ch, 0.05f);
    c.bias = rand_buf((size_t)ch, 0.1f);
    c.y = rand_buf(ny, 0.0f);
    float *yd = rand_buf(ny, 0.0f);
    df_conv2d(yd, c.x, NULL, NULL, c.w, c.bias, B, H, W, ch, ch, 3, 1);
    for (int i = 0; i < 3; i++) {
        c.wino = 2 * i; // 0, 2, 4
        rows[i].flops = 2.0 * B * H * W * 9.0 * ch * ch;
        time_best(run_conv, &c, reps, &rows[i]);
        if (i == 0) continue;
        double ss = 0, se = 0, mx = 0;
        for (size_t j = 0; j < ny; j++) {
            const double d = (double)c.y[j] - yd[j];
            ss += (double)yd[j] * yd[j];
            se += d * d;
            if (fabs(d) > mx) mx = fabs(d);
        }
        err[c.wino][0] = mx / sqrt(ss / (double)ny);
        err[c.wino][1] = sqrt(se / ss);
    }
    df_free(c.x);
    df_free(c.w);
    df_free(c.bias);
    df_free(c.y);
    df_free(yd);
}

#if HAVE_ATTENTION
static void bench_attn(bench_row *row, int T, int NH, int HS, int reps) {
    attn_ctx c = {T, NH, HS, NULL, NULL, NULL, NULL};
    const size_t n = (size_t)c.T * c.NH * c.HS;
    c.q = rand_buf(n, 1.0f);
    c.k = rand_buf(n, 1.0f);
    c.v = rand_buf(n, 1.0f);
    c.o = rand_buf(n, 0.0f);
    row->flops = 4.0 * c.T * (double)c.T * c.NH * c.HS;
    time_best(run_attn, &c, reps, row);
    df_free(c.q);
    df_free(c.k);
    df_free(c.v);
    df_free(c.o);
}
#endif

static void usage(void) {
    fprintf(stderr, "usage: df-bench-kernels [-t threads] [--quick] [--reps R] "
                    "[--cpu auto|avx2|avx512|ref]\n");
}

int main(int argc, char **argv) {
    int threads = 1, quick = 0, reps = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cpu") && i + 1 < argc) {
            char err[256];
            if (df_cpu_apply_option(argv[++i], err, sizeof err) != 0) {
                fprintf(stderr, "df-bench-kernels: error: %s\n", err);
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (reps <= 0) reps = quick ? 3 : 5;
    df_set_threads(threads);
    threads = df_get_threads();
    const char *blas_core = openblas_get_corename();

    bench_row rows[64];
    int nrows = 0;
    double blas_par = 0.0;

    // 1. sgemm ceiling; every timed call of the other rows is paired with one of it.
    sgemm_ctx sg = {4096, 1280, 1280, NULL, NULL, NULL};
    sg.a = rand_buf((size_t)sg.M * sg.K, 1.0f);
    sg.b = rand_buf((size_t)sg.K * sg.N, 1.0f);
    sg.c = rand_buf((size_t)sg.M * sg.N, 0.0f);
    {
        bench_row *r = new_row(rows, &nrows, "sgemm 4096x1280x1280", "sgemm");
        r->flops = 2.0 * sg.M * sg.N * sg.K;
        g_ceil_fn = run_sgemm;
        g_ceil_ctx = &sg;
        g_ceil_row = r;
        time_best(run_sgemm, &sg, reps, r);
        // Effective BLAS threads: process CPU time / wall time of one more call.
        struct timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        const double t0 = df_time_s();
        run_sgemm(&sg);
        const double wall = df_time_s() - t0;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        blas_par = ((double)(c1.tv_sec - c0.tv_sec) + 1e-9 * (double)(c1.tv_nsec - c0.tv_nsec)) /
                   wall;
    }
    // 2. conv 3x3 at SDXL shapes
    const int conv_shapes[3][2] = {{128, 320}, {64, 640}, {32, 1280}};
    const int first_conv = nrows;
    for (int s = 0; s < 3; s++) {
        const int hw = conv_shapes[s][0], ch = conv_shapes[s][1];
        char name[48], key[32];
        snprintf(name, sizeof name, "conv3x3 %dx%dx%d->%d", hw, hw, ch, ch);
        snprintf(key, sizeof key, "conv3x3_%d", hw);
        bench_row *r = new_row(rows, &nrows, name, key);
        bench_conv(r, hw, hw, ch, ch, 3, 1, reps);
    }
    const int last_conv = nrows;
    // 3. linear
    {
        linear_ctx c = {4096, 640, 5120, NULL, NULL, NULL, NULL};
        c.x = rand_buf((size_t)c.M * c.K, 1.0f);
        c.w = rand_buf((size_t)c.N * c.K, 0.05f);
        c.b = rand_buf((size_t)c.N, 0.1f);
        c.y = rand_buf((size_t)c.M * c.N, 0.0f);
        bench_row *r = new_row(rows, &nrows, "linear 4096x640->5120", "linear");
        r->flops = 2.0 * c.M * c.N * c.K;
        time_best(run_linear, &c, reps, r);
        df_free(c.x);
        df_free(c.w);
        df_free(c.b);
        df_free(c.y);
    }
    // 4. attention
    int have_attn = 0;
#if HAVE_ATTENTION
    bench_attn(new_row(rows, &nrows, "attention T4096 10x64", "attention"), 4096, 10, 64, reps);
    have_attn = 1;
#endif
    const int attn_row = have_attn ? nrows - 1 : -1;
    // 5. extras (informational): SD1.5's head size, 1x1 conv, the stride-2 downsampler conv
    if (!quick) {
#if HAVE_ATTENTION
        bench_attn(new_row(rows, &nrows, "attention T4096 8x40", "attention_8x40"), 4096, 8, 40,
                   reps);
#endif
        bench_row *r = new_row(rows, &nrows, "conv1x1 64x64x640->1280", "conv1x1_64");
        bench_conv(r, 64, 64, 640, 1280, 1, 1, reps);
        r = new_row(rows, &nrows, "conv3x3 s2 128x128x320->320", "conv3x3s2_128");
        bench_conv(r, 128, 128, 320, 320, 3, 2, reps);
    }
    // 6. Winograd vs direct at the SD 1.5 512x512 UNet shapes (B = 2): informational rows, the
    // speedups and errors against the direct conv in the JSON line (winograd_*).
    enum { NWINO = 4 };
    const int wino_shapes[NWINO][2] = {{64, 320}, {32, 640}, {16, 1280}, {8, 1280}};
    int wino_row[NWINO];
    double wino_err[NWINO][5][2];
    memset(wino_err, 0, sizeof wino_err);
    for (int s = 0; s < NWINO && !quick; s++) {
        const int hw = wino_shapes[s][0], ch = wino_shapes[s][1];
        wino_row[s] = nrows;
        static const char *const algo[3] = {"direct", "wino2", "wino4"};
        for (int i = 0; i < 3; i++) {
            char name[48], key[32];
            snprintf(name, sizeof name, "%s B2 %dx%dx%d", algo[i], hw, hw, ch);
            snprintf(key, sizeof key, "%s_b2_%d", i ? algo[i] : "conv3x3", hw);
            new_row(rows, &nrows, name, key);
        }
        bench_wino(&rows[wino_row[s]], hw, hw, ch, reps, wino_err[s]);
    }
    // 7. --compute bf16 (AVX512_BF16 only): the linear and the three conv3x3 shapes, keys
    //    bf16_linear, bf16_conv3x3_<hw> (ratio to the paired f32 sgemm calls, as every row)
    if (df_bf16_available()) {
        bench_bf16(new_row(rows, &nrows, "bf16 linear 4096x640->5120", "bf16_linear"), 0, 0,
                   4096, 640, 5120, reps);
        for (int s = 0; s < 3; s++) {
            const int hw = conv_shapes[s][0], ch = conv_shapes[s][1];
            char name[48], key[32];
            snprintf(name, sizeof name, "bf16 conv3x3 %dx%dx%d->%d", hw, hw, ch, ch);
            snprintf(key, sizeof key, "bf16_conv3x3_%d", hw);
            bench_bf16(new_row(rows, &nrows, name, key), hw, ch, 0, 0, 0, reps);
        }
    }
    df_free(sg.a);
    df_free(sg.b);
    df_free(sg.c);

    for (int i = 0; i < nrows; i++) rows[i].gflops = rows[i].flops / rows[i].best_s * 1e-9;
    const double ceil_gf = rows[0].gflops;
    // Primary ratios: best time against the best of the row's paired ceiling calls (wall; CPU
    // time for 1 thread). Best-of ratios against the ceiling's best of the whole run for
    // reference (conservative: the ceiling had more samples).
    // CPU-time figures: with one thread, process CPU time excludes the time this process was
    // descheduled, so they stay meaningful on a shared machine.
    const int cpu_cols = threads == 1;
    double ratio[32], ratio_cpu[32], best_ratio[32], best_ratio_cpu[32];
    for (int i = 0; i < nrows; i++) {
        ratio[i] = i == 0 ? 1.0 : rows[i].ceil_s / rows[i].best_s * rows[i].flops / rows[0].flops;
        ratio_cpu[i] =
            i == 0 ? 1.0 : rows[i].ceil_cpu_s / rows[i].best_cpu_s * rows[i].flops / rows[0].flops;
        best_ratio[i] = rows[i].gflops / ceil_gf;
        best_ratio_cpu[i] =
            (rows[i].flops / rows[i].best_cpu_s) / (rows[0].flops / rows[0].best_cpu_s);
    }

    const char *env_nt = getenv("OPENBLAS_NUM_THREADS");
    printf("df-bench-kernels: threads %d (OpenBLAS %d, OPENBLAS_NUM_THREADS=%s, sgemm cpu/wall "
           "%.2f), BLAS core %s, %d calls after a warm-up, each paired with a ceiling call\n",
           threads, openblas_get_num_threads(), env_nt ? env_nt : "unset", blas_par, blas_core,
           reps);
    printf("kernels: %s\n", df_cpu_describe());
    printf("%-30s %10s %10s %8s %8s", "kernel", "best ms", "GFLOP/s", "ratio", "run-best");
    if (cpu_cols) printf(" %9s %8s", "cpu ratio", "run-best");
    printf("\n");
    for (int i = 0; i < nrows; i++) {
        printf("%-30s %10.2f %10.1f %8.3f %8.3f", rows[i].name, rows[i].best_s * 1e3,
               rows[i].gflops, ratio[i], best_ratio[i]);
        if (cpu_cols) printf(" %9.3f %8.3f", ratio_cpu[i], best_ratio_cpu[i]);
        printf("\n");
    }
    if (!have_attn) printf("%-30s %10s\n", "attention T4096 10x64", "n/a (not built)");
    printf("(ratio: best rate / best rate of the sgemm calls paired with this row's calls; "
           "run-best: / best sgemm rate of the whole run)\n");
    // Winograd speedups over the direct conv (ratio to the paired ceiling calls, so drift
    // cancels), and the tile df_winograd_pick(WINOGRAD) takes.
    double wsp[NWINO][5], wsp_min = 1e30;
    int wpick[NWINO];
    for (int s = 0; s < NWINO && !quick; s++) {
        const int r0 = wino_row[s], hw = wino_shapes[s][0], ch = wino_shapes[s][1];
        wsp[s][2] = ratio[r0 + 1] / ratio[r0];
        wsp[s][4] = ratio[r0 + 2] / ratio[r0];
        wpick[s] = df_winograd_pick(DF_CONV_ALGO_WINOGRAD, 2, hw, hw, ch, ch, 3, 1);
        const double sp = wpick[s] ? wsp[s][wpick[s]] : 1.0;
        if (sp < wsp_min) wsp_min = sp;
        if (s == 0) printf("winograd vs direct (B2, error: max |diff| / rms and rel-L2 vs the direct conv):\n");
        printf("  %2dx%-2dx%-4d  F2 %.2fx (err %.2g / %.2g)  F4 %.2fx (err %.2g / %.2g)  "
               "--conv-algo winograd: F%d\n",
               hw, hw, ch, wsp[s][2], wino_err[s][2][0], wino_err[s][2][1], wsp[s][4],
               wino_err[s][4][0], wino_err[s][4][1], wpick[s]);
    }

    double conv_min = 1e30, conv_min_cpu = 1e30, conv_min_b = 1e30, conv_min_bc = 1e30;
    for (int i = first_conv; i < last_conv; i++) {
        if (ratio[i] < conv_min) conv_min = ratio[i];
        if (ratio_cpu[i] < conv_min_cpu) conv_min_cpu = ratio_cpu[i];
        if (best_ratio[i] < conv_min_b) conv_min_b = best_ratio[i];
        if (best_ratio_cpu[i] < conv_min_bc) conv_min_bc = best_ratio_cpu[i];
    }
    printf("{\"threads\": %d, \"blas_core\": \"%s\", \"cpu_variant\": \"%s\", "
           "\"blas_cpu_per_wall\": %.2f, \"ratio\": \"vs paired ceiling calls\", ", threads,
           blas_core, df_cpu_variant_name(df_cpu_variant_get()), blas_par);
    printf("\"sgemm_gflops\": %.2f, \"conv3x3_ratio_min\": %.4f, ", ceil_gf, conv_min);
    printf("\"linear_ratio\": %.4f, ", ratio[last_conv]);
    if (attn_row >= 0) printf("\"attention_ratio\": %.4f", ratio[attn_row]);
    else printf("\"attention_ratio\": null");
    for (int i = 1; i < nrows; i++)
        printf(", \"%s_gflops\": %.2f, \"%s_ratio\": %.4f", rows[i].key, rows[i].gflops,
               rows[i].key, ratio[i]);
    if (quick) printf(", \"winograd_speedup_min\": null");
    else printf(", \"winograd_speedup_min\": %.4f", wsp_min);
    for (int s = 0; s < NWINO && !quick; s++)
        for (int m = 2; m <= 4; m += 2)
            printf(", \"winograd_f%d_%d_speedup\": %.4f, \"winograd_f%d_%d_err_max\": %.3g, "
                   "\"winograd_f%d_%d_err_l2\": %.3g",
                   m, wino_shapes[s][0], wsp[s][m], m, wino_shapes[s][0], wino_err[s][m][0], m,
                   wino_shapes[s][0], wino_err[s][m][1]);
    printf(", \"run_best\": {\"conv3x3_ratio_min\": %.4f", conv_min_b);
    for (int i = 1; i < nrows; i++) printf(", \"%s_ratio\": %.4f", rows[i].key, best_ratio[i]);
    printf("}");
    if (cpu_cols) {
        printf(", \"cpu_time\": {\"sgemm_gflops\": %.2f, \"conv3x3_ratio_min\": %.4f",
               rows[0].flops / rows[0].best_cpu_s * 1e-9, conv_min_cpu);
        for (int i = 1; i < nrows; i++) printf(", \"%s_ratio\": %.4f", rows[i].key, ratio_cpu[i]);
        printf(", \"run_best\": {\"conv3x3_ratio_min\": %.4f", conv_min_bc);
        for (int i = 1; i < nrows; i++)
            printf(", \"%s_ratio\": %.4f", rows[i].key, best_ratio_cpu[i]);
        printf("}}");
    }
    printf("}\n");
    return 0;
}
