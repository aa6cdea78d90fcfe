// distrifuse-bench: latency benchmark of the text-to-image pipeline, the equivalent of the
// original DistriFusion's `run_sdxl.py --mode benchmark` (spec distrifusion.md §5.3).
//
//   distrifuse-bench -m MODEL [-W 1024 -H 1024] [--steps 20] [--warmup-times 5]
//                    [--test-times 20] [--output-type latent|pil] [distributed options]
//   mpiexec -n N distrifuse-bench -m MODEL ...
//
// Every iteration is one whole pipeline call with the same parameters (text encoding, all
// sampling steps and, with --output-type pil, the VAE decode + uint8 conversion): first
// --warmup-times untimed ones, then --test-times timed ones. The model, the communicators, the
// exchange plan and the UNet arenas are built once (a df_engine) and reused, so the
// warm-up iterations absorb the one-time costs. Each timed iteration starts after a barrier; its
// latency is the largest wall time over the ranks.
//
// Rank 0 prints a table on stderr and one JSON object as the last line of stdout. Per step
// kind (sync, first async, steady async) it reports the mean over ranks of the step time, the
// compute time, the time blocked on communication and the bytes exchanged per rank.
//
// Exit codes: 0 ok, 1 runtime failure, 2 usage error. Errors are one line on stderr:
// "distrifuse-bench: error: <detail>".
#include "cli_core.h"
#include "faults.h"
#include "tool_env.h"
#include "predict.h"

#include "distrifuse/df.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "distrifuse-bench"
#define DEFAULT_PROMPT "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k"

typedef struct bench_args {
    cli_common c; // the options shared with distrifuse (tools/common/cli_core.h)
    const char *output_type; // "latent" | "pil"
    int warmup_times, test_times;
    float ignore_ratio;
    int quiet;
} bench_args;

#define OFF(f) offsetof(bench_args, f)

static const cli_opt k_opts[] = {
    {CLI_SECTION, 0, "Model and prompt", NULL, 0, 0, NULL, NULL, NULL},
    CLI_CORE_MODEL_ROWS(bench_args),
    {CLI_STR, 'p', "prompt", "TEXT", OFF(c.gen.prompt), 0, NULL, NULL, "the prompt"},

    {CLI_SECTION, 0, "Sampling (as distrifuse)", NULL, 0, 0, NULL, NULL, NULL},
    CLI_CORE_SAMPLING_ROWS(bench_args),
    {CLI_I64, 's', "seed", "N", OFF(c.gen.seed), 0, NULL, NULL,
     "seed of the initial noise; -1 = random (drawn once per iteration)"},

    {CLI_SECTION, 0, "Benchmark", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_INT, 0, "warmup-times", "N", OFF(warmup_times), 0, NULL, NULL,
     "untimed generations first"},
    {CLI_INT, 0, "test-times", "N", OFF(test_times), 0, NULL, NULL, "timed generations"},
    {CLI_FLOAT, 0, "ignore-ratio", "R", OFF(ignore_ratio), 0, NULL, NULL,
     "latency_s drops floor(R * test_times / 2) of the fastest and of the slowest runs "
     "before averaging (run_sdxl.py)"},
    {CLI_CHOICE, 0, "output-type", "TYPE", OFF(output_type), 0, "latent|pil", NULL,
     "latent: stop after the sampling loop; pil: include the VAE decode and the uint8 "
     "conversion"},
    CLI_CORE_VAE_ROWS(bench_args),
    {CLI_STR, 0, "save-latent", "FILE", OFF(c.gen.save_latent), 0, NULL, "none",
     "write the final latents of the last timed generation (rank 0; the small write is "
     "inside that run's time)"},

    {CLI_SECTION, 0, "Runtime", NULL, 0, 0, NULL, NULL, NULL},
    CLI_CORE_RUNTIME_ROWS(bench_args),
    {CLI_FLAG, 'q', "quiet", NULL, OFF(quiet), 1, NULL, "",
     "no per-iteration lines (the table and the JSON line are still printed)"},

    {CLI_SECTION, 0, "Distributed (mpiexec -n N " PROG " ...; ignored in a single process)",
     NULL, 0, 0, NULL, NULL, NULL},
    CLI_CORE_DIST_ROWS(bench_args),
};
#define N_OPTS ((int)(sizeof k_opts / sizeof k_opts[0]))

static bench_args bench_defaults(void) {
    bench_args a;
    memset(&a, 0, sizeof a);
    a.c = cli_common_defaults();
    a.c.gen.prompt = DEFAULT_PROMPT;
    a.output_type = "latent";
    a.warmup_times = 5;
    a.test_times = 20;
    a.ignore_ratio = 0.2f;
    return a;
}

static void print_help(FILE *f) {
    bench_args d = bench_defaults();
    fprintf(f,
            "usage: " PROG " -m MODEL [options]\n"
            "       mpiexec -n N " PROG " -m MODEL [options]\n"
            "Latency benchmark of the text-to-image pipeline (run_sdxl.py --mode benchmark): "
            "warm-up\ngenerations, then timed ones with the same parameters. Prints a table on "
            "stderr and one\nJSON object as the last line of stdout.\n");
    cli_print_options(f, k_opts, N_OPTS, &d);
    fprintf(f, "\nExit status: 0 success, 1 runtime error, 2 usage error.\n");
}

static df_engine *g_engine = NULL;

static void cleanup(void) {
    df_engine_destroy(g_engine);
    g_engine = NULL;
}

// ---------------------------------------------------------------------------------------------
// Per-step statistics

enum { K_SYNC = 0, K_FIRST, K_STEADY, K_SYNC_LATE, K_COUNT };
static const char *const k_kind_name[K_COUNT] = {"sync", "first_async", "steady_async",
                                                 "sync"};
static const char *const k_kind_label[K_COUNT] = {"sync", "first async", "steady async",
                                                  "sync, steps>W+1"};

// Sums over the timed generations of one rank (doubles so one allgather carries them).
enum { F_N = 0, F_WALL, F_COMPUTE, F_WAIT, F_PROGRESS, F_GATHER, F_SENT, F_RECV, F_GBYTES,
       F_HALO, F_KV, F_GN, F_TP, F_OUT, F_COUNT };
typedef struct step_acc {
    int recording;    // 1 during timed generations
    int warmup_steps; // W
    int all_sync;     // full_sync / naive patch: no step is asynchronous
    int by_index;     // 1 process: classify by the step index (no runtime flag)
    int seen_async;   // this generation had an asynchronous step already
    double v[K_COUNT][F_COUNT];
} step_acc;

static void on_step(void *user, int step, double eval_s, const df_dist_step_stats *st) {
    step_acc *a = user;
    if (step == 0) a->seen_async = 0;
    if (!a->recording) return;
    int sync = a->by_index ? (a->all_sync || step <= a->warmup_steps) : st->sync;
    // a synchronous step counts as sync, and also as sync_late at the steady positions
    int kinds[2], nk = 0;
    if (sync) {
        kinds[nk++] = K_SYNC;
        if (step >= a->warmup_steps + 2) kinds[nk++] = K_SYNC_LATE;
    } else {
        kinds[nk++] = a->seen_async ? K_STEADY : K_FIRST;
        a->seen_async = 1;
    }
    for (int i = 0; i < nk; i++) {
        double *v = a->v[kinds[i]];
        v[F_N] += 1;
        v[F_WALL] += eval_s;
        v[F_COMPUTE] += st->t_compute;
        v[F_WAIT] += st->t_wait;
        v[F_PROGRESS] += st->t_progress;
        v[F_GATHER] += st->t_gather;
        v[F_SENT] += (double)st->bytes_sent;
        v[F_RECV] += (double)st->bytes_recv;
        v[F_GBYTES] += (double)st->bytes_gather;
        v[F_HALO] += (double)st->bytes_halo;
        v[F_KV] += (double)st->bytes_kv;
        v[F_GN] += (double)st->bytes_gn;
        v[F_TP] += (double)st->bytes_tp;
        v[F_OUT] += (double)st->bytes_output;
    }
}

// Per-step means of one kind, averaged over the ranks.
typedef struct kind_stats {
    double steps_per_image;
    double step_s, compute_s, wait_s, progress_s, gather_s;
    double bytes_sent, bytes_recv, bytes_gather; // per step and rank
    double bytes_halo, bytes_kv, bytes_gn, bytes_tp, bytes_output; // sent + received
} kind_stats;

static kind_stats kind_mean(const double *all, int ranks, int k, int runs) {
    kind_stats ks;
    memset(&ks, 0, sizeof ks);
    double s[F_COUNT] = {0};
    double n_any = 0;
    for (int r = 0; r < ranks; r++) {
        const double *v = all + ((size_t)r * K_COUNT + k) * F_COUNT;
        if (v[F_N] <= 0) continue;
        n_any += 1;
        s[F_N] += v[F_N];
        for (int f = F_WALL; f < F_COUNT; f++) s[f] += v[f] / v[F_N];
    }
    if (n_any == 0) return ks;
    ks.steps_per_image = s[F_N] / n_any / runs;
    ks.step_s = s[F_WALL] / n_any;
    ks.compute_s = s[F_COMPUTE] / n_any;
    ks.wait_s = s[F_WAIT] / n_any;
    ks.progress_s = s[F_PROGRESS] / n_any;
    ks.gather_s = s[F_GATHER] / n_any;
    ks.bytes_sent = s[F_SENT] / n_any;
    ks.bytes_recv = s[F_RECV] / n_any;
    ks.bytes_gather = s[F_GBYTES] / n_any;
    ks.bytes_halo = s[F_HALO] / n_any;
    ks.bytes_kv = s[F_KV] / n_any;
    ks.bytes_gn = s[F_GN] / n_any;
    ks.bytes_tp = s[F_TP] / n_any;
    ks.bytes_output = s[F_OUT] / n_any;
    return ks;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static const char *human_bytes(double b, char *buf, size_t cap) {
    if (b >= 1048576.0) snprintf(buf, cap, "%.2f MiB", b / 1048576.0);
    else if (b >= 1024.0) snprintf(buf, cap, "%.1f KiB", b / 1024.0);
    else snprintf(buf, cap, "%.0f B", b);
    return buf;
}

static cJSON *kind_json(const kind_stats *k) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "steps", k->steps_per_image);
    cJSON_AddNumberToObject(o, "step_s", k->step_s);
    cJSON_AddNumberToObject(o, "compute_s", k->compute_s);
    cJSON_AddNumberToObject(o, "wait_s", k->wait_s);
    cJSON_AddNumberToObject(o, "progress_s", k->progress_s);
    cJSON_AddNumberToObject(o, "gather_s", k->gather_s);
    cJSON_AddNumberToObject(o, "bytes", k->bytes_sent + k->bytes_recv);
    cJSON_AddNumberToObject(o, "bytes_sent", k->bytes_sent);
    cJSON_AddNumberToObject(o, "bytes_recv", k->bytes_recv);
    cJSON_AddNumberToObject(o, "gather_bytes", k->bytes_gather);
    return o;
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    // --predict: the scaling model (tools/cli/predict.c); no MPI, no generation
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--predict") == 0) return df_bench_predict(argc, argv);
    int rc = cli_start(PROG, &argc, &argv); // MPI (under a launcher), the SIGBUS handler
    if (rc) return rc;
    cli_on_finish(cleanup);

    bench_args a = bench_defaults();
    int seen[N_OPTS];
    char err[1024];
    if (cli_parse(k_opts, N_OPTS, &a, argc, argv, seen, err, sizeof err) != 0)
        return cli_usage_error(err);
    if (df_cpu_apply_option(df_cpu_variant_name(a.c.pp.cpu_variant), err, sizeof err) != 0)
        return cli_usage_error(err);
    if (a.c.help) {
        if (cli_rank() == 0) print_help(stdout);
        return cli_finish(0);
    }
    if (a.c.version) {
        if (cli_rank() == 0) printf(PROG " %s\nkernels: %s\n", df_version(), df_cpu_describe());
        return cli_finish(0);
    }
    if (!a.c.model) return cli_usage_error("no model given (-m PATH; see --help)");
    if (a.warmup_times < 0) return cli_usage_error("--warmup-times must be >= 0");
    if (a.test_times < 1) return cli_usage_error("--test-times must be >= 1");
    if (!(a.ignore_ratio >= 0.0f && a.ignore_ratio < 1.0f))
        return cli_usage_error("--ignore-ratio must be in [0, 1)");
    a.c.gen.decode = strcmp(a.output_type, "pil") == 0;
    if (cli_core_finish(&a.c, k_opts, N_OPTS, seen, err, sizeof err) != 0)
        return cli_usage_error(err);
    const df_parallel_params *dp = &a.c.pp;
    df_clear_error();

    df_log_set_level(a.c.verbose ? DF_LOG_DEBUG : DF_LOG_INFO);
    df_set_threads(a.c.gen.threads); // 0: all cores

    double t0 = df_time_s();
    df_load_params lp = df_tool_load_params(); // DF_DATA_DIR, DF_UNET_* (tool_env.h)
    lp.conv_algo = a.c.conv_algo;              // --conv-algo
    df_status st = df_engine_create(a.c.model, &lp, dp, df_tool_launched_by_mpi(), &g_engine);
    if (st != DF_OK) { // agreed on every rank; the lowest failing rank prints
        if (st != DF_ERR_PEER) {
            snprintf(err, sizeof err, "cannot load model '%s'", a.c.model);
            cli_print_runtime_error(err);
        }
        return cli_finish(CLI_EXIT_RUNTIME);
    }
    df_model *m = df_engine_model(g_engine);
    const double t_load = df_time_s() - t0;
    if (df_engine_check(g_engine, &a.c.gen) != DF_OK) return cli_usage_error(df_last_error());
    const int split_eff = df_engine_split_batch(g_engine); // odd N: runs without

    // resolved parameters for the reports
    int W, H;
    float cfg;
    const char *sampler;
    df_model_defaults(m, &W, &H, &cfg, &sampler);
    if (a.c.gen.width) W = a.c.gen.width;
    if (a.c.gen.height) H = a.c.gen.height;
    if (a.c.gen.cfg_scale >= 0) cfg = a.c.gen.cfg_scale;
    if (a.c.gen.sampler) sampler = a.c.gen.sampler;
    if (cli_rank() == 0) {
        char desc[1024];
        df_model_describe(m, desc, sizeof desc);
        df_log(DF_LOG_INFO, "model: %s (loaded in %.2f s)", desc, t_load);
    }

    step_acc acc;
    memset(&acc, 0, sizeof acc);
    acc.warmup_steps = dp->warmup_steps;
    acc.all_sync = dp->sync_mode == DF_SYNC_FULL_SYNC || dp->parallelism == DF_PAR_NAIVE_PATCH;
    acc.by_index = cli_size() == 1;
    df_engine_set_step_callback(g_engine, on_step, &acc);

    // ---- iterations
    const int n_iter = a.warmup_times + a.test_times;
    double *lat = calloc((size_t)a.test_times, sizeof(double)); // max over ranks, seconds
    double *gath = calloc((size_t)cli_size(), sizeof(double));
    if (!lat || !gath) {
        free(lat);
        free(gath);
        return cli_runtime_error_abort("out of memory");
    }
    const char *save_latent = a.c.gen.save_latent;
    df_gen_info info;
    memset(&info, 0, sizeof info);
    for (int it = 0; it < n_iter; it++) {
        const int timed = it >= a.warmup_times;
        df_gen_params p = a.c.gen;
        p.save_latent = it == n_iter - 1 ? save_latent : NULL;
        acc.recording = timed;
        if (cli_watchdog_begin(&a.c, &p) != 0)
            return cli_runtime_error_abort("cannot start the --rank-timeout watchdog");
        if (df_world_barrier() != DF_OK) {
            return cli_runtime_error_abort("MPI barrier");
        }
        df_image img = {0};
        const double ts = df_time_s();
        st = df_engine_generate(g_engine, &p, &img, &info);
        double dt = df_time_s() - ts;
        df_tool_watchdog_disarm();
        df_image_free(&img);
        if (st != DF_OK) {
            free(lat);
            free(gath);
            return cli_runtime_error_abort("generation failed");
        }
        if (cli_size() > 1) {
            if (df_world_allgather(&dt, gath, sizeof dt) != DF_OK) {
                return cli_runtime_error_abort("MPI allgather");
            }
            for (int r = 0; r < cli_size(); r++) dt = gath[r] > dt ? gath[r] : dt;
        }
        if (timed) lat[it - a.warmup_times] = dt;
        if (cli_rank() == 0 && !a.quiet)
            df_log(DF_LOG_INFO, "%s %d/%d: %.4f s", timed ? "run" : "warm-up",
                   timed ? it - a.warmup_times + 1 : it + 1,
                   timed ? a.test_times : a.warmup_times, dt);
    }
    free(gath);

    // ---- statistics over the ranks
    double *all = calloc((size_t)cli_size() * K_COUNT * F_COUNT, sizeof(double));
    if (!all) {
        free(lat);
        return cli_runtime_error_abort("out of memory");
    }
    if (cli_size() > 1) {
        if (df_world_allgather(acc.v, all, sizeof acc.v) != DF_OK) {
            free(lat);
            free(all);
            return cli_runtime_error_abort("MPI allgather");
        }
    } else {
        memcpy(all, acc.v, sizeof acc.v);
    }
    kind_stats ks[K_COUNT];
    for (int k = 0; k < K_COUNT; k++) ks[k] = kind_mean(all, cli_size(), k, a.test_times);
    free(all);
    const int comm_tensors = df_engine_comm_tensors(g_engine);
    char band_plan[1024];
    const int band_uneven = df_engine_band_plan(g_engine, band_plan, sizeof band_plan);

    if (cli_rank() == 0) {
        const int n = a.test_times;
        double *sorted = malloc((size_t)n * sizeof(double));
        if (!sorted) {
            free(lat);
            return cli_runtime_error_abort("out of memory");
        }
        memcpy(sorted, lat, (size_t)n * sizeof(double));
        qsort(sorted, (size_t)n, sizeof(double), cmp_double);
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++) mean += sorted[i];
        mean /= n;
        for (int i = 0; i < n; i++) var += (sorted[i] - mean) * (sorted[i] - mean);
        const double sd = n > 1 ? sqrt(var / (n - 1)) : 0.0;
        const double median =
            n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
        const int drop = (int)floor((double)a.ignore_ratio * n / 2.0);
        double trimmed = 0;
        for (int i = drop; i < n - drop; i++) trimmed += sorted[i];
        trimmed /= n - 2 * drop;

        // The asynchronous step time: steady async steps; else the first async one; with no
        // asynchronous step (1 process, full_sync, naive patch, too few steps) the synchronous
        // steps after W+1 (where the steady ones would be), else every synchronous step.
        int ak = ks[K_STEADY].steps_per_image > 0  ? K_STEADY
                 : ks[K_FIRST].steps_per_image > 0 ? K_FIRST
                 : ks[K_SYNC_LATE].steps_per_image > 0 ? K_SYNC_LATE
                                                       : K_SYNC;
        const char *ak_name = k_kind_name[ak];

        // ---- table (stderr)
        fprintf(stderr,
                "\n" PROG ": %s, %dx%d, %d steps, %s, cfg %g, output %s, threads %d/rank\n",
                df_model_name(m), W, H, a.c.gen.steps, sampler, (double)cfg, a.output_type,
                df_get_threads());
        fprintf(stderr, "  kernels: %s\n", df_cpu_describe());
        if (cli_size() > 1)
            fprintf(stderr, "  %d ranks: %s, %s, warm-up steps %d, %s, checkpoint %d, comm %s, "
                    "progress %s, %d exchanged tensors\n",
                    cli_size(), df_parallelism_name(dp->parallelism),
                    df_sync_mode_name(dp->sync_mode),
                    dp->warmup_steps, split_eff ? "split batch" : "no split batch",
                    dp->comm_checkpoint, df_comm_dtype_name(dp->comm_dtype),
                    df_progress_name(dp->progress), comm_tensors);
        else
            fprintf(stderr, "  1 rank (single process); steps 0..%d counted as the sync kind\n",
                    dp->warmup_steps);
        fprintf(stderr,
                "  latency over %d runs (after %d warm-up): mean %.4f s, median %.4f s, "
                "min %.4f s, max %.4f s, sd %.4f s; latency_s %.4f s (trimmed %d/end)\n",
                n, a.warmup_times, mean, median, sorted[0], sorted[n - 1], sd, trimmed, drop);
        fprintf(stderr, "  %-16s %9s %10s %11s %9s %10s %13s %13s\n", "step kind", "steps/img",
                "step ms", "compute ms", "wait ms", "gather ms", "bytes/step", "gather bytes");
        for (int k = 0; k < K_COUNT; k++) {
            const kind_stats *s = &ks[k];
            if (k == K_SYNC_LATE && ak != K_SYNC_LATE) continue; // shown as the fallback only
            char b1[32], b2[32];
            if (s->steps_per_image <= 0) {
                fprintf(stderr, "  %-16s %9s\n", k_kind_label[k], "-");
                continue;
            }
            fprintf(stderr, "  %-16s %9.1f %10.2f %11.2f %9.2f %10.2f %13s %13s\n",
                    k_kind_label[k], s->steps_per_image, 1e3 * s->step_s, 1e3 * s->compute_s,
                    1e3 * s->wait_s, 1e3 * s->gather_s,
                    human_bytes(s->bytes_sent + s->bytes_recv, b1, sizeof b1),
                    human_bytes(s->bytes_gather, b2, sizeof b2));
        }
        fprintf(stderr, "  (per step and rank, mean over %d rank%s; wait = blocked on the patch "
                "exchange; gather = the\n   output all-gather, which also absorbs the skew "
                "between ranks; bytes = exchange sent + received)\n", cli_size(),
                cli_size() > 1 ? "s" : "");
        if (a.c.gen.decode)
            fprintf(stderr, "  VAE decode (rank 0, last run) %.3f s: compute %.3f s, halo %.3f s, "
                    "gather %.3f s (%s)\n", info.timings.vae_s, info.timings.vae_compute_s,
                    info.timings.vae_halo_s, info.timings.vae_gather_s,
                    cli_size() > 1 && a.c.gen.parallel_vae ? "parallel, one band per rank"
                                                     : "rank 0 alone");
        fprintf(stderr, "  async step %.2f ms (%s), wait %.2f ms/step, %s/step; peak RSS "
                "%.0f MiB\n\n", 1e3 * ks[ak].step_s, ak_name, 1e3 * ks[ak].wait_s,
                human_bytes(ks[ak].bytes_sent + ks[ak].bytes_recv, err, sizeof err),
                df_peak_rss_mb());
        if (cli_size() > 1) {
            char b1[32], b2[32], b3[32], b4[32], b5[32];
            fprintf(stderr, "  %s step bytes (sent + received per rank): halo %s, K/V %s, "
                    "GroupNorm %s, tensor all-reduce %s; output gather %s\n", ak_name,
                    human_bytes(ks[ak].bytes_halo, b1, sizeof b1),
                    human_bytes(ks[ak].bytes_kv, b2, sizeof b2),
                    human_bytes(ks[ak].bytes_gn, b3, sizeof b3),
                    human_bytes(ks[ak].bytes_tp, b4, sizeof b4),
                    human_bytes(ks[ak].bytes_output, b5, sizeof b5));
        }
        if (band_uneven) fprintf(stderr, "  %s\n\n", band_plan);

        // ---- JSON (last line of stdout)
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tool", PROG);
        cJSON_AddNumberToObject(o, "latency_s", trimmed);
        cJSON_AddNumberToObject(o, "ranks", cli_size());
        cJSON_AddStringToObject(o, "parallelism", df_parallelism_name(dp->parallelism));
        cJSON_AddStringToObject(o, "sync_mode", df_sync_mode_name(dp->sync_mode));
        cJSON_AddNumberToObject(o, "async_step_s", ks[ak].step_s);
        cJSON_AddStringToObject(o, "async_step_kind", ak_name);
        cJSON_AddNumberToObject(o, "wait_s_per_step", ks[ak].wait_s);
        cJSON_AddNumberToObject(o, "bytes_per_step", ks[ak].bytes_sent + ks[ak].bytes_recv);
        // bytes_per_step by kind (they sum to it); the output gather is not part of it
        cJSON_AddNumberToObject(o, "bytes_halo", ks[ak].bytes_halo);
        cJSON_AddNumberToObject(o, "bytes_kv", ks[ak].bytes_kv);
        cJSON_AddNumberToObject(o, "bytes_gn", ks[ak].bytes_gn);
        cJSON_AddNumberToObject(o, "bytes_tp", ks[ak].bytes_tp);
        cJSON_AddNumberToObject(o, "bytes_output", ks[ak].bytes_output);
        if (band_uneven) cJSON_AddStringToObject(o, "band_plan", band_plan);
        cJSON_AddNumberToObject(o, "gather_s_per_step", ks[ak].gather_s);
        cJSON_AddNumberToObject(o, "gather_bytes_per_step", ks[ak].bytes_gather);
        cJSON_AddNumberToObject(o, "latency_mean_s", mean);
        cJSON_AddNumberToObject(o, "latency_median_s", median);
        cJSON_AddNumberToObject(o, "latency_min_s", sorted[0]);
        cJSON_AddNumberToObject(o, "latency_max_s", sorted[n - 1]);
        cJSON_AddNumberToObject(o, "latency_std_s", sd);
        cJSON_AddItemToObject(o, "latencies_s", cJSON_CreateDoubleArray(lat, n));
        cJSON *kinds = cJSON_CreateObject();
        for (int k = 0; k < K_COUNT; k++) {
            if (k == K_SYNC_LATE) continue;
            cJSON_AddItemToObject(kinds, k_kind_name[k], kind_json(&ks[k]));
        }
        cJSON_AddItemToObject(o, "step_kinds", kinds);
        cJSON_AddStringToObject(o, "model", df_model_name(m));
        cJSON_AddStringToObject(o, "arch", df_arch_name(df_model_arch(m)));
        cJSON_AddNumberToObject(o, "width", W);
        cJSON_AddNumberToObject(o, "height", H);
        cJSON_AddNumberToObject(o, "steps", a.c.gen.steps);
        cJSON_AddNumberToObject(o, "unet_calls", info.timings.unet_calls);
        cJSON_AddStringToObject(o, "sampler", sampler);
        cJSON_AddNumberToObject(o, "cfg_scale", cfg);
        cJSON_AddNumberToObject(o, "seed", (double)info.seed);
        cJSON_AddStringToObject(o, "output_type", a.output_type);
        cJSON_AddNumberToObject(o, "warmup_times", a.warmup_times);
        cJSON_AddNumberToObject(o, "test_times", a.test_times);
        cJSON_AddNumberToObject(o, "ignore_ratio", round((double)a.ignore_ratio * 1e6) / 1e6);
        cJSON_AddNumberToObject(o, "threads", df_get_threads());
        cJSON_AddStringToObject(o, "cpu_variant", df_cpu_variant_name(df_cpu_variant_get()));
        cJSON_AddStringToObject(o, "compute", df_compute_name(a.c.gen.compute));
        cJSON_AddStringToObject(o, "conv_algo", df_conv_algo_name(a.c.conv_algo));
        cJSON_AddNumberToObject(o, "warmup_steps", dp->warmup_steps);
        cJSON_AddBoolToObject(o, "split_batch", split_eff);
        cJSON_AddStringToObject(o, "split_scheme", df_split_scheme_name(dp->split_scheme));
        cJSON_AddNumberToObject(o, "comm_checkpoint", dp->comm_checkpoint);
        cJSON_AddStringToObject(o, "comm_dtype", df_comm_dtype_name(dp->comm_dtype));
        cJSON_AddStringToObject(o, "comm_progress", df_progress_name(dp->progress));
        cJSON_AddStringToObject(o, "gn_compat", df_gn_compat_name(dp->gn_compat));
        cJSON_AddNumberToObject(o, "comm_tensors", comm_tensors);
        cJSON_AddNumberToObject(o, "text_encode_s", info.timings.text_encode_s);
        cJSON_AddNumberToObject(o, "denoise_s", info.timings.denoise_s);
        cJSON_AddNumberToObject(o, "vae_s", info.timings.vae_s);
        cJSON_AddNumberToObject(o, "vae_compute_s", info.timings.vae_compute_s);
        cJSON_AddNumberToObject(o, "vae_halo_s", info.timings.vae_halo_s);
        cJSON_AddNumberToObject(o, "vae_gather_s", info.timings.vae_gather_s);
        cJSON_AddBoolToObject(o, "parallel_vae",
                              a.c.gen.decode && a.c.gen.parallel_vae && cli_size() > 1);
        cJSON_AddNumberToObject(o, "load_s", t_load);
        cJSON_AddNumberToObject(o, "peak_rss_mb", df_peak_rss_mb());
        char *js = cJSON_PrintUnformatted(o);
        if (js) printf("%s\n", js);
        fflush(stdout);
        cJSON_free(js);
        cJSON_Delete(o);
        free(sorted);
    }
    free(lat);
    return cli_finish(0);
}
