// UNet step benchmark: one CFG-batch UNet evaluation at a real resolution, against the sgemm
// ceiling measured in the same run.
//
//   df-bench-unet --model PATH --height H --width W [--steps S] [--threads T] [--batch B]
//                 [--yaml LDM_YAML] [--no-probe] [--cpu auto|avx2|avx512|ref]
//                 [--conv-algo auto|direct|winograd] [--compute f32|bf16]
//
// PATH: a diffusers pipeline folder, a unet folder or a single-file checkpoint. H and W are image
// pixels (latent H/8 x W/8). Runs df_unet_set_text once, one warm-up forward, then S timed
// forwards (batch B, default 2 = CFG) with the single-rank context. GFLOP/s use the config's
// multiply-add count (df_unet_macs, sdxl.md §8.1: convs, linears, attention QK^T and AV; x2 for
// FLOPs). The ceiling is cblas_sgemm M=4096, N=K=1280 with the same threads, measured two ways:
//   interleaved (default): one sample at each block boundary of every timed forward (about 12
//     per forward, through the UNet debug hook); probe time is excluded from the step time and
//     `ratio` = step GFLOP/s / mean sample. This compares like with like on a machine whose
//     speed drifts (here the 1-thread sgemm rate swings 85-155 GFLOP/s second to second, even
//     by CPU time and with no other process running, so a best-of ceiling measured once sets
//     the step against the machine's best moment). Each sample follows an untimed 512-row
//     warm-up (B back in cache); the probes evict the forward's data: slightly conservative.
//   best (`ratio_vs_best_ceiling`): best of 3 after a warm-up, before and after the steps, the
//     better figure counts (the only figure with --no-probe).
// Prints a summary, then as the last line one JSON object: step_s, step_s_min, gflops,
// sgemm_gflops, ratio, ratio_vs_best_ceiling, peak_rss_mb, weights_mb, arena_mb, threads, ...,
// and the same figures by process CPU time ("cpu_time": meaningful on a shared machine, where
// wall time includes time the process waited for a core; ratio_best uses the step with the
// least CPU time).
//
// The BLAS kernel type and OpenMP wait policy are chosen before main (tools/common/blas_select.c).
#include "core/core.h"
#include "core/cpu.h"
#include "kernels/gemm_bf16.h"
#include "kernels/kernels.h"
#include "model/pctx.h"
#include "model/unet.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static void fill_rand(float *p, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) {
        g_rng ^= g_rng << 13;
        g_rng ^= g_rng >> 7;
        g_rng ^= g_rng << 17;
        p[i] = scale * (float)((double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
}

static double cpu_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *alloc_or_die(size_t n) {
    float *p = df_malloc((n ? n : 1) * sizeof(float));
    if (!p) {
        fprintf(stderr, "df-bench-unet: out of memory (%zu floats)\n", n);
        exit(1);
    }
    return p;
}

// Best GFLOP/s of cblas_sgemm 4096 x 1280 x 1280 over 3 runs after a warm-up (wall time; *cpu_gf
// by process CPU time).
static double sgemm_ceiling(double *cpu_gf) {
    const int M = 4096, N = 1280, K = 1280;
    float *a = alloc_or_die((size_t)M * K), *b = alloc_or_die((size_t)K * N),
          *c = alloc_or_die((size_t)M * N);
    fill_rand(a, (size_t)M * K, 1.0f);
    fill_rand(b, (size_t)K * N, 1.0f);
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = df_time_s(), c0 = cpu_time_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c,
                    N);
        double dt = df_time_s() - t0, dc = cpu_time_s() - c0;
        if (r > 0 && dt < best) best = dt;
        if (r > 0 && dc < best_cpu) best_cpu = dc;
    }
    *cpu_gf = 2.0 * M * N * K / best_cpu * 1e-9;
    df_free(a);
    df_free(b);
    df_free(c);
    return 2.0 * M * N * K / best * 1e-9;
}

// Interleaved ceiling samples (see the top comment).
typedef struct probe_ctx {
    int active;             // sample now (timed forwards only)
    float *a, *b, *c;       // [4096][1280], [1280][1280], [4096][1280]
    double wall, cpu;       // time spent in samples during the current forward
    double sum_gf, sum_cpu_gf, min_gf, max_gf;
    int n;
} probe_ctx;

static void probe_sample(void *user, const char *name, const float *x, int B, int H, int W,
                         int C) {
    (void)name, (void)x, (void)B, (void)H, (void)W, (void)C;
    probe_ctx *p = user;
    if (!p->active) return;
    const int M = 4096, N = 1280, K = 1280;
    // untimed warm-up on 512 rows: B and the BLAS buffers back in cache (the forward evicted
    // them; a cold sample reads ~15% low, which would flatter the ratio)
    const double w0 = df_time_s(), wc0 = cpu_time_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 512, N, K, 1.0f, p->a, K, p->b, N, 0.0f,
                p->c, N);
    const double t0 = df_time_s(), c0 = cpu_time_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, p->a, K, p->b, N, 0.0f,
                p->c, N);
    const double dt = df_time_s() - t0, dc = cpu_time_s() - c0;
    p->wall += t0 - w0;
    p->cpu += c0 - wc0;
    const double gf = 2.0 * M * N * K / dt * 1e-9;
    p->wall += dt;
    p->cpu += dc;
    p->sum_gf += gf;
    p->sum_cpu_gf += 2.0 * M * N * K / dc * 1e-9;
    if (p->n == 0 || gf < p->min_gf) p->min_gf = gf;
    if (p->n == 0 || gf > p->max_gf) p->max_gf = gf;
    p->n++;
}

static void usage(void) {
    fprintf(stderr, "usage: df-bench-unet --model PATH --height H --width W [--steps S] "
                    "[--threads T] [--batch B] [--yaml LDM_YAML] [--no-probe]\n"
                    "       [--cpu auto|avx2|avx512|ref] [--conv-algo auto|direct|winograd] "
                    "[--compute f32|bf16]\n"
                    "  H, W: image pixels (multiples of 8); defaults: steps 3, batch 2, "
                    "threads all\n");
}

int main(int argc, char **argv) {
    const char *model = NULL, *yaml = NULL;
    int height = 0, width = 0, steps = 3, threads = 0, B = 2, use_probe = 1;
    int conv_algo = DF_CONV_ALGO_DIRECT;
    const char *compute = "f32"; // --compute (df_unet_set_compute)
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--model") && more) model = argv[++i];
        else if (!strcmp(a, "--height") && more) height = atoi(argv[++i]);
        else if (!strcmp(a, "--width") && more) width = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && more) steps = atoi(argv[++i]);
        else if ((!strcmp(a, "--threads") || !strcmp(a, "-t")) && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && more) B = atoi(argv[++i]);
        else if (!strcmp(a, "--yaml") && more) yaml = argv[++i];
        else if (!strcmp(a, "--no-probe")) use_probe = 0;
        else if (!strcmp(a, "--conv-algo") && more) {
            if (!df_conv_algo_parse(argv[++i], &conv_algo)) {
                fprintf(stderr, "df-bench-unet: error: unknown --conv-algo '%s' (auto, direct, "
                                "winograd, winograd-f2, winograd-f4)\n", argv[i]);
                return 2;
            }
        }
        else if (!strcmp(a, "--compute") && more && (!strcmp(argv[i + 1], "f32") ||
                                                     !strcmp(argv[i + 1], "bf16")))
            compute = argv[++i];
        else if (!strcmp(a, "--cpu") && more) {
            char err[256];
            if (df_cpu_apply_option(argv[++i], err, sizeof err) != 0) {
                fprintf(stderr, "df-bench-unet: error: %s\n", err);
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (!model || height <= 0 || width <= 0 || height % 8 || width % 8 || steps < 1 || B < 1) {
        usage();
        return 2;
    }
    df_set_threads(threads);
    threads = df_get_threads();

    double t0 = df_time_s();
    df_unet *u = NULL;
    df_status st = df_unet_load(model, yaml, &u);
    if (st != DF_OK) {
        fprintf(stderr, "df-bench-unet: %s: %s\n", df_status_str(st), df_last_error());
        return 1;
    }
    const double load_s = df_time_s() - t0;
    df_unet_set_conv_algo(u, conv_algo);
    const df_unet_config *c = df_unet_get_config(u);
    char desc[512];
    df_unet_config_describe(c, desc, sizeof desc);
    const int h = height / 8, w = width / 8, Tt = 77;
    const int bf16 = df_unet_set_compute(u, !strcmp(compute, "bf16"));
    if (!bf16 && !strcmp(compute, "bf16"))
        printf("df-bench-unet: --compute bf16: %s; computing in f32\n",
               df_bf16_unavailable_reason());
    st = df_unet_plan(u, B, h, w, h);
    if (st != DF_OK) {
        fprintf(stderr, "df-bench-unet: %s: %s\n", df_status_str(st), df_last_error());
        df_unet_destroy(u);
        return 1;
    }
    const size_t nx = (size_t)B * h * w * c->in_channels, ny = (size_t)B * h * w * c->out_channels;
    float *x = alloc_or_die(nx), *y = alloc_or_die(ny);
    float *enc = alloc_or_die((size_t)B * Tt * c->cross_attention_dim);
    float *pooled = alloc_or_die((size_t)B * (c->text_embeds_dim > 0 ? c->text_embeds_dim : 1));
    float *tids = alloc_or_die((size_t)B * (c->n_time_ids > 0 ? c->n_time_ids : 1));
    fill_rand(x, nx, 1.0f);
    fill_rand(enc, (size_t)B * Tt * c->cross_attention_dim, 1.0f);
    fill_rand(pooled, (size_t)B * (c->text_embeds_dim > 0 ? c->text_embeds_dim : 1), 1.0f);
    for (int b = 0; b < B; b++) {
        const float ids[6] = {(float)height, (float)width, 0, 0, (float)height, (float)width};
        for (int i = 0; i < c->n_time_ids; i++) tids[b * c->n_time_ids + i] = ids[i % 6];
    }
    float tsteps[64];
    for (int b = 0; b < B && b < 64; b++) tsteps[b] = 981.0f;

    double ceil1_cpu, ceil2_cpu;
    const double ceil1 = sgemm_ceiling(&ceil1_cpu);
    t0 = df_time_s();
    st = df_unet_set_text(u, B, enc, Tt, pooled, tids);
    const double text_s = df_time_s() - t0;
    df_pctx ctx;
    df_pctx_single_init(&ctx, h);
    probe_ctx probe;
    memset(&probe, 0, sizeof probe);
    if (use_probe) {
        probe.a = alloc_or_die((size_t)4096 * 1280);
        probe.b = alloc_or_die((size_t)1280 * 1280);
        probe.c = alloc_or_die((size_t)4096 * 1280);
        fill_rand(probe.a, (size_t)4096 * 1280, 1.0f);
        fill_rand(probe.b, (size_t)1280 * 1280, 1.0f);
        df_unet_set_debug(u, probe_sample, &probe);
    }
    double warm_s = 0, sum = 0, best = 1e30, cpu_sum = 0, cpu_best = 1e30;
    for (int s = 0; s <= steps && st == DF_OK; s++) {
        probe.active = s > 0;
        probe.wall = probe.cpu = 0;
        t0 = df_time_s();
        const double c0 = cpu_time_s();
        st = df_unet_forward(u, &ctx, x, tsteps, y);
        const double dt = df_time_s() - t0 - probe.wall, dc = cpu_time_s() - c0 - probe.cpu;
        if (s == 0) warm_s = dt;
        else {
            sum += dt;
            cpu_sum += dc;
            if (dt < best) best = dt;
            if (dc < cpu_best) cpu_best = dc;
        }
    }
    if (st != DF_OK) {
        fprintf(stderr, "df-bench-unet: %s: %s\n", df_status_str(st), df_last_error());
        df_unet_destroy(u);
        return 1;
    }
    const double ceil2 = sgemm_ceiling(&ceil2_cpu);
    const double best_gf = ceil1 > ceil2 ? ceil1 : ceil2;
    const double best_cpu = ceil1_cpu > ceil2_cpu ? ceil1_cpu : ceil2_cpu;
    // the ratio's ceiling: mean of the interleaved samples, else the best before/after
    const double ceil_gf = probe.n ? probe.sum_gf / probe.n : best_gf;
    const double ceil_cpu = probe.n ? probe.sum_cpu_gf / probe.n : best_cpu;
    double checksum = 0;
    for (size_t i = 0; i < ny; i++) checksum += y[i];
    const double step_s = sum / steps;
    const double flops = 2.0 * df_unet_macs(c, h, w, Tt) * B;
    const double gflops = flops / step_s * 1e-9;
    // CPU-time figures: stay meaningful when other processes share the cores.
    const double cpu_gflops = flops / (cpu_sum / steps) * 1e-9;
    const double cpu_gflops_best = flops / cpu_best * 1e-9;
    const double weights_mb = df_unet_weight_bytes(u) / 1048576.0;
    const double arena_mb = df_unet_arena_bytes(u) / 1048576.0;
    const double cache_mb = df_unet_cache_bytes(u) / 1048576.0;
    const double rss = df_peak_rss_mb();
    printf("df-bench-unet: %s\n", desc);
    printf("  image %dx%d (latent %dx%d), batch %d, threads %d, BLAS core %s\n", height, width, h,
           w, B, threads, openblas_get_corename());
    printf("  kernels: %s\n", df_cpu_describe());
    printf("  conv algorithm: %s\n", df_conv_algo_name(conv_algo));
    printf("  load %.2f s, set_text %.3f s, warm-up %.3f s\n", load_s, text_s, warm_s);
    printf("  step %.3f s (min %.3f, %d steps), %.1f GFLOP per step, %.1f GFLOP/s\n", step_s,
           best, steps, flops * 1e-9, gflops);
    if (probe.n)
        printf("  sgemm 4096x1280x1280 interleaved: mean %.1f GFLOP/s (%d samples, %.1f..%.1f) "
               "-> ratio %.3f\n", ceil_gf, probe.n, probe.min_gf, probe.max_gf,
               gflops / ceil_gf);
    printf("  sgemm 4096x1280x1280 best before/after %.1f GFLOP/s -> ratio %.3f\n", best_gf,
           gflops / best_gf);
    printf("  by process CPU time: step %.3f CPU-s (best %.3f), %.1f GFLOP/CPU-s vs sgemm %.1f -> "
           "ratio %.3f (best step %.3f; vs best ceiling %.1f: %.3f)\n",
           cpu_sum / steps, cpu_best, cpu_gflops, ceil_cpu, cpu_gflops / ceil_cpu,
           cpu_gflops_best / ceil_cpu, best_cpu, cpu_gflops / best_cpu);
    printf("  weights %.1f MB (mmapped), f32 cache %.1f MB, arena %.1f MB, peak RSS %.1f MB "
           "(output checksum %.6g)\n", weights_mb, cache_mb, arena_mb, rss, checksum);
    printf("{\"model\": \"%s\", \"arch\": \"%s\", \"height\": %d, \"width\": %d, \"batch\": %d, "
           "\"steps\": %d, \"threads\": %d, \"step_s\": %.4f, \"step_s_min\": %.4f, "
           "\"gflop_per_step\": %.2f, \"gflops\": %.2f, \"sgemm_gflops\": %.2f, \"ratio\": %.4f, "
           "\"ceiling\": \"%s\", \"ceiling_samples\": %d, \"sgemm_gflops_best\": %.2f, "
           "\"ratio_vs_best_ceiling\": %.4f, "
           "\"peak_rss_mb\": %.1f, \"weights_mb\": %.1f, \"cache_mb\": %.1f, \"arena_mb\": %.1f, "
           "\"load_s\": %.3f, \"set_text_s\": %.4f, \"blas_core\": \"%s\", "
           "\"cpu_variant\": \"%s\", \"conv_algo\": \"%s\", \"compute\": \"%s\", "
           "\"cpu_time\": {\"step_cpu_s\": %.4f, \"gflops\": %.2f, \"sgemm_gflops\": %.2f, "
           "\"ratio\": %.4f, \"step_cpu_s_min\": %.4f, \"ratio_best\": %.4f, "
           "\"sgemm_gflops_best\": %.2f, \"ratio_vs_best_ceiling\": %.4f}}\n",
           model, c->arch, height, width, B, steps, threads, step_s, best, flops * 1e-9, gflops,
           ceil_gf, gflops / ceil_gf, probe.n ? "interleaved" : "best", probe.n, best_gf,
           gflops / best_gf, rss, weights_mb, cache_mb, arena_mb, load_s, text_s,
           openblas_get_corename(), df_cpu_variant_name(df_cpu_variant_get()),
           df_conv_algo_name(conv_algo), bf16 ? "bf16" : "f32", cpu_sum / steps,
           cpu_gflops, ceil_cpu, cpu_gflops / ceil_cpu,
           cpu_best, cpu_gflops_best / ceil_cpu, best_cpu, cpu_gflops / best_cpu);
    df_free(x);
    df_free(y);
    df_free(enc);
    df_free(pooled);
    df_free(tids);
    df_free(probe.a);
    df_free(probe.b);
    df_free(probe.c);
    df_unet_destroy(u);
    return 0;
}
