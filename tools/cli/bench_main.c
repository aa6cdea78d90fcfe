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
// exchange plan and the UNet arenas are built once (a df_dist_session) and reused, so the
// warm-up iterations absorb the one-time costs. Each timed iteration starts after a barrier; its
// latency is the largest wall time over the ranks.
//
// Rank 0 prints a table on stderr and one JSON object as the last line of stdout. Per step
// kind (sync, first async, steady async) it reports the mean over ranks of the step time, the
// compute time, the time blocked on communication and the bytes exchanged per rank.
//
// Exit codes: 0 ok, 1 runtime failure, 2 usage error. Errors are one line on stderr:
// "distrifuse-bench: error: <detail>".
#include "faults.h"
#include "tool_env.h"
#include "args.h"
#include "predict.h"

#include "distrifuse/df.h"

#include "core/core.h"
#include "core/cpu.h"
#include "pipeline/pipeline_dist.h"
#include "runtime/dist.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "distrifuse-bench"
#define DEFAULT_PROMPT "Astronaut in a jungle, cold color palette, muted colors, detailed, 8k"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

typedef struct bench_args {
    df_gen_params gen;
    const char *model;
    const char *output_type; // "latent" | "pil"
    int warmup_times, test_times;
    float ignore_ratio;
    int verbose, quiet, help, version;
    const char *cpu; // --cpu: kernel variant (core/cpu.h)
    const char *compute; // --compute f32|bf16 (df_compute_dtype)
    const char *parallelism, *sync_mode, *split_scheme, *comm_dtype, *comm_progress;
    const char *gn_compat; // "exact" | "original"
    int warmup_steps, no_split_batch, comm_checkpoint;
    const char *band_weights; // --band-weights w0,w1,... | auto
} bench_args;

#define OFF(f) offsetof(bench_args, f)
#define SAMPLERS "ddim|euler|euler_a|dpm++2m|pndm"

static const cli_opt k_opts[] = {
    {CLI_SECTION, 0, "Model and prompt", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_STR, 'm', "model", "PATH", OFF(model), 0, NULL, "",
     "diffusers pipeline folder or single-file .safetensors checkpoint (SDXL or SD 1.x); "
     "required"},
    {CLI_STR, 'p', "prompt", "TEXT", OFF(gen.prompt), 0, NULL, NULL, "the prompt"},
    {CLI_STR, 'n', "negative-prompt", "TEXT", OFF(gen.negative_prompt), 0, NULL,
     "none: SDXL uses zero embeddings, SD 1.x the empty prompt", "negative prompt"},

    {CLI_SECTION, 0, "Sampling (as distrifuse)", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_INT, 'W', "width", "N", OFF(gen.width), 0, NULL,
     "the model's: SDXL 1024, SD 1.5 512", "image width in pixels, a multiple of 8"},
    {CLI_INT, 'H', "height", "N", OFF(gen.height), 0, NULL,
     "the model's: SDXL 1024, SD 1.5 512", "image height in pixels, a multiple of 8"},
    {CLI_INT, 0, "steps", "N", OFF(gen.steps), 0, NULL, NULL, "number of sampling steps"},
    {CLI_FLOAT, 0, "cfg-scale", "G", OFF(gen.cfg_scale), 0, NULL,
     "the model's: SDXL 5.0, SD 1.x 7.5",
     "classifier-free guidance scale (guidance runs when G > 1)"},
    {CLI_CHOICE, 0, "sampling-method", "NAME", OFF(gen.sampler), 0, SAMPLERS,
     "the model's scheduler config (SDXL euler, SD 1.5 pndm)", "sampler"},
    {CLI_I64, 's', "seed", "N", OFF(gen.seed), 0, NULL, NULL,
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
    {CLI_FLAG, 0, "no-parallel-vae", NULL, OFF(gen.parallel_vae), 0, NULL, "",
     "pil under mpiexec: rank 0 decodes alone (default: one row band per rank)"},
    {CLI_STR, 0, "save-latent", "FILE", OFF(gen.save_latent), 0, NULL, "none",
     "write the final latents of the last timed generation (rank 0; the small write is "
     "inside that run's time)"},

    {CLI_SECTION, 0, "Runtime", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_INT, 't', "threads", "N", OFF(gen.threads), 0, NULL, "0 = all cores",
     "compute threads per rank"},
    {CLI_FLAG, 'v', "verbose", NULL, OFF(verbose), 1, NULL, "", "debug logging"},
    {CLI_FLAG, 'q', "quiet", NULL, OFF(quiet), 1, NULL, "",
     "no per-iteration lines (the table and the JSON line are still printed)"},
    {CLI_FLAG, 'h', "help", NULL, OFF(help), 1, NULL, "", "show this help and exit"},
    {CLI_CHOICE, 0, "cpu", "VARIANT", OFF(cpu), 0, "auto|avx2|avx512|ref", "auto",
     "vector kernels to run: auto = the best this CPU (and every MPI rank) supports"},
    {CLI_CHOICE, 0, "compute", "TYPE", OFF(compute), 0, "f32|bf16", "f32",
     "UNet convs and linears: bf16 inputs with f32 accumulation where the CPU has AVX512_BF16 "
     "(else f32, with a note)"},
    {CLI_FLAG, 0, "version", NULL, OFF(version), 1, NULL, "", "print the version and exit"},

    {CLI_SECTION, 0, "Distributed (mpiexec -n N " PROG " ...; ignored in a single process)",
     NULL, 0, 0, NULL, NULL, NULL},
    {CLI_CHOICE, 0, "parallelism", "MODE", OFF(parallelism), 0, "patch|naive_patch|tensor", NULL,
     "patch: DistriFusion displaced patch parallelism; naive_patch: independent patches; "
     "tensor: attention heads and channels split, with all-reduces"},
    {CLI_CHOICE, 0, "sync-mode", "MODE", OFF(sync_mode), 0,
     "corrected_async_gn|sync_gn|stale_gn|separate_gn|full_sync|no_sync", NULL,
     "what is exchanged after the warm-up steps (full_sync: every step synchronous)"},
    {CLI_INT, 0, "warmup-steps", "N", OFF(warmup_steps), 0, NULL, NULL,
     "steps 0..N run synchronously before the stale (asynchronous) exchange starts"},
    {CLI_FLAG, 0, "no-split-batch", NULL, OFF(no_split_batch), 1, NULL, "",
     "every rank computes both CFG halves of its patch (default: the ranks split into an "
     "uncond and a cond group; an odd N runs as --no-split-batch)"},
    {CLI_CHOICE, 0, "split-scheme", "SCHEME", OFF(split_scheme), 0, "row|col|alternate", NULL,
     "naive_patch: how the image is cut"},
    {CLI_STR, 0, "band-weights", "W0,W1,...|auto", OFF(band_weights), 0, NULL, "",
     "relative speed of each rank of a CFG group: band rows proportional (default: equal "
     "bands); auto: time the warm-up steps and re-plan the bands once"},
    {CLI_INT, 0, "comm-checkpoint", "N", OFF(comm_checkpoint), 0, NULL, NULL,
     "exchanged tensors per batched asynchronous all-gather"},
    {CLI_CHOICE, 0, "comm-dtype", "TYPE", OFF(comm_dtype), 0, "f32|f16", NULL,
     "precision of the exchanged activations"},
    {CLI_CHOICE, 0, "gn-compat", "MODE", OFF(gn_compat), 0, "exact|original", NULL,
     "GroupNorm statistics of a patch: exact (a synchronous step equals the single process) or "
     "original (the original DistriFusion's n/(n-1) local variance factor; reproduces its "
     "outputs)"},
    {CLI_CHOICE, 0, "comm-progress", "MODE", OFF(comm_progress), 0, "none|test|thread", NULL,
     "how in-flight exchanges advance: none (only the final wait), test (MPI_Testsome at layer "
     "boundaries), thread (test + a polling thread; MPI_THREAD_MULTIPLE)"},
};
#define N_OPTS ((int)(sizeof k_opts / sizeof k_opts[0]))

static bench_args bench_defaults(void) {
    bench_args a;
    memset(&a, 0, sizeof a);
    a.gen = df_gen_params_default();
    a.gen.prompt = DEFAULT_PROMPT;
    a.output_type = "latent";
    a.warmup_times = 5;
    a.test_times = 20;
    a.ignore_ratio = 0.2f;
    df_dist_params dp = df_dist_params_default();
    a.parallelism = df_parallelism_name(dp.parallelism);
    a.sync_mode = df_sync_mode_name(dp.sync_mode);
    a.split_scheme = df_split_scheme_name(dp.split_scheme);
    a.comm_dtype = df_comm_dtype_name(dp.comm_dtype);
    a.comm_progress = df_progress_name(dp.progress);
    a.gn_compat = dp.gn_compat ? "original" : "exact";
    a.warmup_steps = dp.warmup_steps;
    a.comm_checkpoint = dp.comm_checkpoint;
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

// ---------------------------------------------------------------------------------------------
// Exit paths (as the distrifuse CLI)

static int g_rank = 0, g_size = 1;
static df_comm *g_world = NULL;
static df_dist_session *g_session = NULL;

static int finish(int rc) {
    df_dist_session_destroy(g_session);
    g_session = NULL;
    df_comm_destroy(g_world);
    g_world = NULL;
    df_dist_finalize();
    return rc;
}

static int usage_error(const char *msg) {
    if (g_rank == 0) fprintf(stderr, PROG ": error: %s\n", msg);
    return finish(EXIT_USAGE);
}

static void print_runtime_error(const char *what) {
    char pre[32] = "";
    if (g_size > 1) snprintf(pre, sizeof pre, "[r%d/%d] ", g_rank, g_size);
    fprintf(stderr, "%s" PROG ": error: %s%s%s\n", pre, what, *df_last_error() ? ": " : "",
            df_last_error());
}

// A failure every rank reaches: the lowest failing rank prints, all exit 1. 0 if none failed.
static int agree_failure(int failed, const char *what) {
    int worst = failed ? g_size - g_rank : 0;
    if (g_size > 1 && df_comm_allreduce_max_i32(g_world, &worst, 1) != DF_OK) {
        print_runtime_error("MPI failure");
        df_dist_abort(EXIT_RUNTIME);
    }
    if (!worst) return 0;
    if (failed && g_rank == g_size - worst) print_runtime_error(what);
    return 1;
}

// A failure on this rank the others may not see: print and end the whole job.
static int runtime_error_abort(const char *what) {
    print_runtime_error(what);
    if (g_size > 1) df_dist_abort(EXIT_RUNTIME);
    return finish(EXIT_RUNTIME);
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

// "--comm-progress thread" needs MPI_THREAD_MULTIPLE, chosen before MPI starts (and before the
// table parser runs): look for it in argv.
static int wants_thread_progress(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--comm-progress=thread") == 0) return 1;
        if (strcmp(argv[i], "--comm-progress") == 0 && i + 1 < argc &&
            strcmp(argv[i + 1], "thread") == 0)
            return 1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    // --predict: the scaling model (tools/cli/predict.c); no MPI, no generation
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--predict") == 0) return df_bench_predict(argc, argv);
    if (df_dist_init(&argc, &argv, wants_thread_progress(argc, argv),
                     df_tool_launched_by_mpi()) != DF_OK) {
        print_runtime_error("cannot initialise MPI");
        return EXIT_RUNTIME;
    }
    g_rank = df_mpi_world_rank();
    g_size = df_mpi_world_size();
    if (g_size > 1 && df_comm_world(&g_world) != DF_OK) return runtime_error_abort("MPI");
    {
        char pre[32] = "";
        if (g_size > 1) snprintf(pre, sizeof pre, "[r%d/%d] ", g_rank, g_size);
        df_tool_faults_init(PROG, pre); // SIGBUS on a model file changed while mapped
    }

    bench_args a = bench_defaults();
    int seen[N_OPTS];
    char err[1024];
    if (cli_parse(k_opts, N_OPTS, &a, argc, argv, seen, err, sizeof err) != 0)
        return usage_error(err);
    if (a.cpu && df_cpu_apply_option(a.cpu, err, sizeof err) != 0) return usage_error(err);
    if (a.compute) df_compute_parse(a.compute, &a.gen.compute); // a checked choice
    if (a.help) {
        if (g_rank == 0) print_help(stdout);
        return finish(0);
    }
    if (a.version) {
        if (g_rank == 0) printf(PROG " %s\nkernels: %s\n", df_version(), df_cpu_describe());
        return finish(0);
    }
    if (!a.model) return usage_error("no model given (-m PATH; see --help)");
    if (seen[cli_find(k_opts, N_OPTS, "cfg-scale")] && a.gen.cfg_scale < 0)
        return usage_error("--cfg-scale must be >= 0");
    if (seen[cli_find(k_opts, N_OPTS, "width")] && a.gen.width <= 0)
        return usage_error("--width must be a positive multiple of 8");
    if (seen[cli_find(k_opts, N_OPTS, "height")] && a.gen.height <= 0)
        return usage_error("--height must be a positive multiple of 8");
    if (a.warmup_steps < 0) return usage_error("--warmup-steps must be >= 0");
    if (a.gen.threads < 0) return usage_error("--threads must be >= 0 (0 = all cores)");
    if (a.comm_checkpoint < 1) return usage_error("--comm-checkpoint must be >= 1");
    if (a.warmup_times < 0) return usage_error("--warmup-times must be >= 0");
    if (a.test_times < 1) return usage_error("--test-times must be >= 1");
    if (!(a.ignore_ratio >= 0.0f && a.ignore_ratio < 1.0f))
        return usage_error("--ignore-ratio must be in [0, 1)");
    a.gen.decode = strcmp(a.output_type, "pil") == 0;
    if (df_gen_params_validate(NULL, &a.gen) != DF_OK) return usage_error(df_last_error());
    df_dist_params dp = df_dist_params_default();
    df_parallelism_parse(a.parallelism, &dp.parallelism);
    df_sync_mode_parse(a.sync_mode, &dp.sync_mode);
    df_split_scheme_parse(a.split_scheme, &dp.split_scheme);
    df_comm_dtype_parse(a.comm_dtype, &dp.comm_dtype);
    df_progress_parse(a.comm_progress, &dp.progress);
    dp.gn_compat = strcmp(a.gn_compat, "original") == 0;
    dp.warmup_steps = a.warmup_steps;
    dp.split_batch = !a.no_split_batch;
    const int split_eff = dp.split_batch && g_size % 2 == 0; // odd N: runs without
    dp.comm_checkpoint = a.comm_checkpoint;
    if (a.band_weights && !df_band_weights_parse(a.band_weights, &dp, err, sizeof err))
        return usage_error(err);
    df_clear_error();

    df_log_set_level(a.verbose ? DF_LOG_DEBUG : DF_LOG_INFO);
    df_set_threads(a.gen.threads); // 0: all cores

    double t0 = df_time_s();
    df_model *m = NULL;
    const df_load_params lp = df_tool_load_params(); // DF_DATA_DIR, DF_UNET_* (tool_env.h)
    df_status st = df_model_load_ex(a.model, &lp, &m);
    snprintf(err, sizeof err, "cannot load model '%s'", a.model);
    if (agree_failure(st != DF_OK, err)) {
        df_model_free(m);
        return finish(EXIT_RUNTIME);
    }
    const double t_load = df_time_s() - t0;
    if (df_gen_params_validate(m, &a.gen) != DF_OK ||
        (g_size > 1 && df_generate_dist_check(m, &a.gen, &dp, g_size) != DF_OK)) {
        int rc = usage_error(df_last_error());
        df_model_free(m);
        return rc;
    }

    // resolved parameters for the reports
    int W, H;
    float cfg;
    const char *sampler;
    df_model_defaults(m, &W, &H, &cfg, &sampler);
    if (a.gen.width) W = a.gen.width;
    if (a.gen.height) H = a.gen.height;
    if (a.gen.cfg_scale >= 0) cfg = a.gen.cfg_scale;
    if (a.gen.sampler) sampler = a.gen.sampler;
    if (g_rank == 0) {
        char desc[1024];
        df_model_describe(m, desc, sizeof desc);
        df_log(DF_LOG_INFO, "model: %s (loaded in %.2f s)", desc, t_load);
    }

    step_acc acc;
    memset(&acc, 0, sizeof acc);
    acc.warmup_steps = dp.warmup_steps;
    acc.all_sync = dp.sync_mode == DF_SYNC_FULL_SYNC || dp.parallelism == DF_PAR_NAIVE_PATCH;
    acc.by_index = g_size == 1;
    if (df_dist_session_create(&dp, on_step, &acc, &g_session) != DF_OK) {
        df_model_free(m);
        return runtime_error_abort("cannot create the session");
    }

    // ---- iterations
    const int n_iter = a.warmup_times + a.test_times;
    double *lat = calloc((size_t)a.test_times, sizeof(double)); // max over ranks, seconds
    double *gath = calloc((size_t)g_size, sizeof(double));
    if (!lat || !gath) {
        free(lat);
        free(gath);
        df_model_free(m);
        return runtime_error_abort("out of memory");
    }
    const char *save_latent = a.gen.save_latent;
    df_gen_info info;
    memset(&info, 0, sizeof info);
    for (int it = 0; it < n_iter; it++) {
        const int timed = it >= a.warmup_times;
        df_gen_params p = a.gen;
        p.save_latent = it == n_iter - 1 ? save_latent : NULL;
        acc.recording = timed;
        if (g_size > 1 && df_comm_barrier(g_world) != DF_OK) {
            df_model_free(m);
            return runtime_error_abort("MPI barrier");
        }
        df_image img = {0};
        const double ts = df_time_s();
        st = df_generate_session(g_session, m, &p, &img, &info);
        double dt = df_time_s() - ts;
        df_image_free(&img);
        if (st != DF_OK) {
            free(lat);
            free(gath);
            df_model_free(m);
            return runtime_error_abort("generation failed");
        }
        if (g_size > 1) {
            if (df_comm_allgather(g_world, &dt, gath, sizeof dt) != DF_OK) {
                df_model_free(m);
                return runtime_error_abort("MPI allgather");
            }
            for (int r = 0; r < g_size; r++) dt = gath[r] > dt ? gath[r] : dt;
        }
        if (timed) lat[it - a.warmup_times] = dt;
        if (g_rank == 0 && !a.quiet)
            df_log(DF_LOG_INFO, "%s %d/%d: %.4f s", timed ? "run" : "warm-up",
                   timed ? it - a.warmup_times + 1 : it + 1,
                   timed ? a.test_times : a.warmup_times, dt);
    }
    free(gath);

    // ---- statistics over the ranks
    double *all = calloc((size_t)g_size * K_COUNT * F_COUNT, sizeof(double));
    if (!all) {
        free(lat);
        df_model_free(m);
        return runtime_error_abort("out of memory");
    }
    if (g_size > 1) {
        if (df_comm_allgather(g_world, acc.v, all, sizeof acc.v) != DF_OK) {
            free(lat);
            free(all);
            df_model_free(m);
            return runtime_error_abort("MPI allgather");
        }
    } else {
        memcpy(all, acc.v, sizeof acc.v);
    }
    kind_stats ks[K_COUNT];
    for (int k = 0; k < K_COUNT; k++) ks[k] = kind_mean(all, g_size, k, a.test_times);
    free(all);
    const int comm_tensors = df_dist_session_comm_tensors(g_session);
    char band_plan[1024];
    const int band_uneven = df_dist_session_band_plan(g_session, band_plan, sizeof band_plan);

    if (g_rank == 0) {
        const int n = a.test_times;
        double *sorted = malloc((size_t)n * sizeof(double));
        if (!sorted) {
            free(lat);
            df_model_free(m);
            return runtime_error_abort("out of memory");
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
                df_model_name(m), W, H, a.gen.steps, sampler, (double)cfg, a.output_type,
                df_get_threads());
        fprintf(stderr, "  kernels: %s\n", df_cpu_describe());
        if (g_size > 1)
            fprintf(stderr, "  %d ranks: %s, %s, warm-up steps %d, %s, checkpoint %d, comm %s, "
                    "progress %s, %d exchanged tensors\n",
                    g_size, df_parallelism_name(dp.parallelism), df_sync_mode_name(dp.sync_mode),
                    dp.warmup_steps, split_eff ? "split batch" : "no split batch",
                    dp.comm_checkpoint, df_comm_dtype_name(dp.comm_dtype),
                    df_progress_name(dp.progress), comm_tensors);
        else
            fprintf(stderr, "  1 rank (single process); steps 0..%d counted as the sync kind\n",
                    dp.warmup_steps);
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
                "between ranks; bytes = exchange sent + received)\n", g_size,
                g_size > 1 ? "s" : "");
        if (a.gen.decode)
            fprintf(stderr, "  VAE decode (rank 0, last run) %.3f s: compute %.3f s, halo %.3f s, "
                    "gather %.3f s (%s)\n", info.timings.vae_s, info.timings.vae_compute_s,
                    info.timings.vae_halo_s, info.timings.vae_gather_s,
                    g_size > 1 && a.gen.parallel_vae ? "parallel, one band per rank"
                                                     : "rank 0 alone");
        fprintf(stderr, "  async step %.2f ms (%s), wait %.2f ms/step, %s/step; peak RSS "
                "%.0f MiB\n\n", 1e3 * ks[ak].step_s, ak_name, 1e3 * ks[ak].wait_s,
                human_bytes(ks[ak].bytes_sent + ks[ak].bytes_recv, err, sizeof err),
                df_peak_rss_mb());
        if (g_size > 1) {
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
        cJSON_AddNumberToObject(o, "ranks", g_size);
        cJSON_AddStringToObject(o, "parallelism", df_parallelism_name(dp.parallelism));
        cJSON_AddStringToObject(o, "sync_mode", df_sync_mode_name(dp.sync_mode));
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
        cJSON_AddNumberToObject(o, "steps", a.gen.steps);
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
        cJSON_AddStringToObject(o, "compute", df_compute_name(a.gen.compute));
        cJSON_AddNumberToObject(o, "warmup_steps", dp.warmup_steps);
        cJSON_AddBoolToObject(o, "split_batch", split_eff);
        cJSON_AddStringToObject(o, "split_scheme", df_split_scheme_name(dp.split_scheme));
        cJSON_AddNumberToObject(o, "comm_checkpoint", dp.comm_checkpoint);
        cJSON_AddStringToObject(o, "comm_dtype", df_comm_dtype_name(dp.comm_dtype));
        cJSON_AddStringToObject(o, "comm_progress", df_progress_name(dp.progress));
        cJSON_AddStringToObject(o, "gn_compat", dp.gn_compat ? "original" : "exact");
        cJSON_AddNumberToObject(o, "comm_tensors", comm_tensors);
        cJSON_AddNumberToObject(o, "text_encode_s", info.timings.text_encode_s);
        cJSON_AddNumberToObject(o, "denoise_s", info.timings.denoise_s);
        cJSON_AddNumberToObject(o, "vae_s", info.timings.vae_s);
        cJSON_AddNumberToObject(o, "vae_compute_s", info.timings.vae_compute_s);
        cJSON_AddNumberToObject(o, "vae_halo_s", info.timings.vae_halo_s);
        cJSON_AddNumberToObject(o, "vae_gather_s", info.timings.vae_gather_s);
        cJSON_AddBoolToObject(o, "parallel_vae", a.gen.decode && a.gen.parallel_vae && g_size > 1);
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
    df_model_free(m);
    return finish(0);
}
