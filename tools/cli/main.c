// distrifuse: text-to-image command line (stable-diffusion.cpp flag names).
//
//   distrifuse -m MODEL -p "prompt" [-n "negative"] [-W 1024 -H 1024] [--steps 20]
//              [--cfg-scale G] [--sampling-method euler] [-s SEED] [-o output.png] ...
//
// Under mpiexec (N > 1 ranks) every rank loads the model and runs the loop; the UNet evaluation
// is distributed (DistriFusion patch parallelism, src/runtime/); rank 0 alone prints progress
// and writes the outputs.
//
// Exit codes: 0 ok, 1 runtime failure (unreadable model, I/O), 2 usage error (bad option or
// value, or a size / rank count the patch split cannot handle). Errors are one line on stderr:
// "distrifuse: error: <detail>". Logs and the progress bar go to stderr; stdout receives only
// the path of the written image.
// This is the only place (with the other tools) that calls exit().
#include "args.h"

#include "distrifuse/df.h"

#include "core/core.h"
#include "core/cpu.h"
#include "pipeline/pipeline_dist.h"
#include "runtime/dist.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "distrifuse"
#define DF_VERSION_STRING "0.1.0"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

// Everything the command line can set. df_gen_params holds the library defaults; CLI-only
// fields follow.
typedef struct cli_args {
    df_gen_params gen;
    const char *model;
    const char *output;
    int clip_skip;  // sd.cpp / A1111 convention: 1 = last layer, 2 = penultimate; <= 0 unset
    int vae_tiling; // df_vae_tiling
    int verbose, quiet, help, version;
    const char *cpu; // --cpu: kernel variant (core/cpu.h)
    // Distributed options (used when started by mpiexec with more than one rank)
    const char *parallelism, *sync_mode, *split_scheme, *comm_dtype;
    int warmup_steps, no_split_batch, comm_checkpoint, stats;
} cli_args;

#define OFF(f) offsetof(cli_args, f)
#define SAMPLERS "ddim|euler|euler_a|dpm++2m|pndm"

static const cli_opt k_opts[] = {
    {CLI_SECTION, 0, "Model and prompt", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_STR, 'm', "model", "PATH", OFF(model), 0, NULL, "",
     "diffusers pipeline folder or single-file .safetensors checkpoint (SDXL or SD 1.x); "
     "required"},
    {CLI_STR, 'p', "prompt", "TEXT", OFF(gen.prompt), 0, NULL, "", "the prompt; required"},
    {CLI_STR, 'n', "negative-prompt", "TEXT", OFF(gen.negative_prompt), 0, NULL,
     "none: SDXL uses zero embeddings, SD 1.x the empty prompt", "negative prompt"},
    {CLI_STR, 0, "prompt-2", "TEXT", OFF(gen.prompt_2), 0, NULL, "the prompt",
     "SDXL: prompt for the second text encoder"},
    {CLI_STR, 0, "negative-prompt-2", "TEXT", OFF(gen.negative_prompt_2), 0, NULL,
     "the negative prompt", "SDXL: negative prompt for the second text encoder"},

    {CLI_SECTION, 0, "Sampling", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_INT, 'W', "width", "N", OFF(gen.width), 0, NULL,
     "the model's: SDXL 1024, SD 1.5 512", "image width in pixels, a multiple of 8"},
    {CLI_INT, 'H', "height", "N", OFF(gen.height), 0, NULL,
     "the model's: SDXL 1024, SD 1.5 512", "image height in pixels, a multiple of 8"},
    {CLI_INT, 0, "steps", "N", OFF(gen.steps), 0, NULL, NULL, "number of sampling steps"},
    {CLI_FLOAT, 0, "cfg-scale", "G", OFF(gen.cfg_scale), 0, NULL,
     "the model's: SDXL 5.0, SD 1.x 7.5",
     "classifier-free guidance scale (guidance runs when G > 1)"},
    {CLI_FLOAT, 0, "guidance-rescale", "PHI", OFF(gen.guidance_rescale), 0, NULL, NULL,
     "rescale the guided noise towards the conditional std, 0..1"},
    {CLI_CHOICE, 0, "sampling-method", "NAME", OFF(gen.sampler), 0, SAMPLERS,
     "the model's scheduler config (SDXL euler, SD 1.5 pndm)", "sampler"},
    {CLI_I64, 's', "seed", "N", OFF(gen.seed), 0, NULL, NULL,
     "seed of the initial noise (torch CPU generator); -1 = random"},
    {CLI_INT, 0, "clip-skip", "N", OFF(clip_skip), 0, NULL, "-1 (unset = 1)",
     "skip the last N-1 layers of the text encoders (A1111 / stable-diffusion.cpp "
     "convention: 1 = none, 2 = one; = diffusers clip_skip N-1; SDXL counts from its usual "
     "penultimate layer)"},
    {CLI_STR, 0, "init-latent", "FILE", OFF(gen.init_latent), 0, NULL, "none",
     "start from this noise instead of the seed: .safetensors with one F32 tensor "
     "[1,4,H/8,W/8] (NCHW, before the scheduler's init sigma scaling)"},

    {CLI_SECTION, 0, "Output", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_STR, 'o', "output", "FILE", OFF(output), 0, NULL, NULL,
     "PNG to write (with the generation parameters in a 'parameters' text chunk)"},
    {CLI_STR, 0, "save-latent", "FILE", OFF(gen.save_latent), 0, NULL, "none",
     "also write the final latents (before the VAE) as .safetensors, tensor 'latents' "
     "[1,4,H/8,W/8] F32"},
    {CLI_FLAG, 0, "vae-tiling", NULL, OFF(vae_tiling), DF_VAE_TILE_ON, NULL,
     "auto: tile only when the decode needs over 4 GiB",
     "decode the image in overlapping tiles (diffusers enable_vae_tiling)"},
    {CLI_FLAG, 0, "no-vae-tiling", NULL, OFF(vae_tiling), DF_VAE_TILE_OFF, NULL, "",
     "never tile the VAE decode"},

    {CLI_SECTION, 0, "Runtime", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_INT, 't', "threads", "N", OFF(gen.threads), 0, NULL, "0 = all cores",
     "compute threads"},
    {CLI_FLAG, 'v', "verbose", NULL, OFF(verbose), 1, NULL, "", "debug logging"},
    {CLI_FLAG, 'q', "quiet", NULL, OFF(quiet), 1, NULL, "",
     "only warnings and errors; no progress bar"},
    {CLI_FLAG, 'h', "help", NULL, OFF(help), 1, NULL, "", "show this help and exit"},
    {CLI_CHOICE, 0, "cpu", "VARIANT", OFF(cpu), 0, "auto|avx2|avx512|ref", "auto",
     "vector kernels to run: auto = the best this CPU (and every MPI rank) supports"},
    {CLI_FLAG, 0, "version", NULL, OFF(version), 1, NULL, "", "print the version and exit"},

    {CLI_SECTION, 0, "Distributed (mpiexec -n N " PROG " ...; ignored in a single process)",
     NULL, 0, 0, NULL, NULL, NULL},
    {CLI_CHOICE, 0, "parallelism", "MODE", OFF(parallelism), 0, "patch|naive_patch|tensor", NULL,
     "patch: DistriFusion displaced patch parallelism; naive_patch: independent patches "
     "(baseline, visible seams); tensor: heads/channels split with all-reduces (baseline, "
     "exact; ranks per CFG group must divide the GroupNorm groups)"},
    {CLI_CHOICE, 0, "sync-mode", "MODE", OFF(sync_mode), 0,
     "corrected_async_gn|sync_gn|stale_gn|separate_gn|full_sync|no_sync", NULL,
     "what is exchanged after the warm-up steps (full_sync: every step synchronous)"},
    {CLI_INT, 0, "warmup-steps", "N", OFF(warmup_steps), 0, NULL, NULL,
     "steps 0..N run synchronously before the stale (asynchronous) exchange starts"},
    {CLI_FLAG, 0, "no-split-batch", NULL, OFF(no_split_batch), 1, NULL, "",
     "every rank computes both CFG halves of its patch (default: the ranks split into an "
     "uncond and a cond group, N must be even)"},
    {CLI_CHOICE, 0, "split-scheme", "SCHEME", OFF(split_scheme), 0, "row|col|alternate", NULL,
     "naive_patch: how the image is cut"},
    {CLI_INT, 0, "comm-checkpoint", "N", OFF(comm_checkpoint), 0, NULL, NULL,
     "exchanged tensors per batched asynchronous all-gather"},
    {CLI_CHOICE, 0, "comm-dtype", "TYPE", OFF(comm_dtype), 0, "f32|f16", NULL,
     "precision of the exchanged activations"},
    {CLI_FLAG, 0, "stats", NULL, OFF(stats), 1, NULL, "",
     "print communication statistics (time waiting, bytes, collectives) at the end"},
};
#define N_OPTS ((int)(sizeof k_opts / sizeof k_opts[0]))

static cli_args cli_defaults(void) {
    cli_args a;
    memset(&a, 0, sizeof a);
    a.gen = df_gen_params_default();
    a.output = "output.png";
    a.clip_skip = -1;
    a.vae_tiling = DF_VAE_TILE_AUTO;
    df_dist_params dp = df_dist_params_default();
    a.parallelism = df_parallelism_name(dp.parallelism);
    a.sync_mode = df_sync_mode_name(dp.sync_mode);
    a.split_scheme = df_split_scheme_name(dp.split_scheme);
    a.comm_dtype = df_comm_dtype_name(dp.comm_dtype);
    a.warmup_steps = dp.warmup_steps;
    a.comm_checkpoint = dp.comm_checkpoint;
    return a;
}

static void print_help(FILE *f) {
    cli_args d = cli_defaults();
    fprintf(f,
            "usage: " PROG " -m MODEL -p PROMPT [options]\n"
            "Text-to-image with SDXL / SD 1.x models on CPU (single process, or DistriFusion "
            "patch\nparallelism under mpiexec). Flags follow stable-diffusion.cpp.\n");
    cli_print_options(f, k_opts, N_OPTS, &d);
    fprintf(f, "\nExit status: 0 success, 1 runtime error, 2 usage error.\n");
}

// Process state for the exit paths: MPI rank / size and the world communicator (N > 1).
static int g_rank = 0, g_size = 1;
static df_comm *g_world = NULL;

static int finish(int rc) {
    df_comm_destroy(g_world);
    g_world = NULL;
    df_dist_finalize();
    return rc;
}

// Usage errors are detected identically on every rank: rank 0 prints, everyone exits.
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

// A runtime failure that every rank reaches (failed = 1 on the failing ranks): the lowest
// failing rank prints the message, all ranks exit 1. Returns 0 if no rank failed.
static int agree_failure(int failed, const char *what) {
    int worst = failed ? g_size - g_rank : 0; // max over ranks -> lowest failing rank
    if (g_size > 1 && df_comm_allreduce_max_i32(g_world, &worst, 1) != DF_OK) {
        print_runtime_error("MPI failure");
        df_dist_abort(EXIT_RUNTIME);
    }
    if (!worst) return 0;
    if (failed && g_rank == g_size - worst) print_runtime_error(what);
    return 1;
}

// A runtime failure on this rank that the others may not see (they may be waiting in a
// collective): print and terminate the whole job.
static int runtime_error_abort(const char *what) {
    print_runtime_error(what);
    if (g_size > 1) df_dist_abort(EXIT_RUNTIME);
    return finish(EXIT_RUNTIME);
}

// The output file must be creatable: its folder exists and is writable, and the path is not a
// folder. Checked before the (long) generation.
static int check_writable(const char *path, const char *what, char *err, size_t cap) {
    struct stat sb;
    if (!*path) {
        snprintf(err, cap, "empty %s path", what);
        return -1;
    }
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        snprintf(err, cap, "cannot write %s '%s': it is a directory", what, path);
        return -1;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, cap, "cannot write %s '%s': directory '%s' does not exist", what, path,
                 dir);
        return -1;
    }
    if (access(dir, W_OK) != 0) {
        snprintf(err, cap, "cannot write %s '%s': directory '%s' is not writable", what, path,
                 dir);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Progress bar (stderr): "[=====>    ] 7/20  1.23 s/it  ETA 16.0 s". Redrawn in place on a
// terminal; on a pipe or file about ten lines per image.

typedef struct progress {
    int tty;
    int last_tenth;
} progress;

static void on_progress(void *user, int step, int n, double elapsed) {
    progress *pr = user;
    double per = elapsed / step;
    double eta = per * (n - step);
    char rate[32];
    if (per >= 1.0 || per <= 0.0) snprintf(rate, sizeof rate, "%.2f s/it", per);
    else snprintf(rate, sizeof rate, "%.2f it/s", 1.0 / per);
    enum { W = 30 };
    char bar[W + 1];
    int fill = (int)((double)step / n * W);
    for (int i = 0; i < W; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[W] = 0;
    if (pr->tty) {
        fprintf(stderr, "\r[%s] %d/%d  %s  ETA %.1f s ", bar, step, n, rate, eta);
        if (step == n) fputc('\n', stderr);
        fflush(stderr);
    } else {
        int tenth = step * 10 / n;
        if (tenth != pr->last_tenth || step == n) {
            fprintf(stderr, "step %d/%d  %s  ETA %.1f s\n", step, n, rate, eta);
            pr->last_tenth = tenth;
        }
    }
}

// ---------------------------------------------------------------------------------------------

static void print_stats(const df_dist_step_stats *t, int steps, int tensors,
                        const df_dist_params *dp) {
    int n = steps > 0 ? steps : 1;
    df_log(DF_LOG_INFO,
           "comm (rank 0, %s/%s, %d exchanged tensors): per step compute %.3f s, wait %.3f s, "
           "progress %.3f s, output gather %.3f s; sent %.2f MiB/step, received %.2f MiB/step, "
           "%.1f collectives/step, %d blocked waits",
           df_parallelism_name(dp->parallelism), df_sync_mode_name(dp->sync_mode), tensors,
           t->t_compute / n, t->t_wait / n, t->t_progress / n, t->t_gather / n,
           t->bytes_sent / 1048576.0 / n, t->bytes_recv / 1048576.0 / n,
           (double)t->n_collectives / n, t->n_waits_blocked);
}

int main(int argc, char **argv) {
    // MPI first (it may consume launcher arguments); a plain process runs without MPI.
    if (df_dist_init(&argc, &argv, 0) != DF_OK) {
        print_runtime_error("cannot initialise MPI");
        return EXIT_RUNTIME;
    }
    g_rank = df_mpi_world_rank();
    g_size = df_mpi_world_size();
    if (g_size > 1 && df_comm_world(&g_world) != DF_OK) return runtime_error_abort("MPI");

    cli_args a = cli_defaults();
    int seen[N_OPTS];
    char err[1024];
    if (cli_parse(k_opts, N_OPTS, &a, argc, argv, seen, err, sizeof err) != 0)
        return usage_error(err);
    if (a.cpu && df_cpu_apply_option(a.cpu, err, sizeof err) != 0) return usage_error(err);
    if (a.help) {
        if (g_rank == 0) print_help(stdout);
        return finish(0);
    }
    if (a.version) {
        if (g_rank == 0) printf(PROG " " DF_VERSION_STRING "\nkernels: %s\n", df_cpu_describe());
        return finish(0);
    }
    if (!a.model) return usage_error("no model given (-m PATH; see --help)");
    if (!a.gen.prompt) return usage_error("no prompt given (-p TEXT; see --help)");
    if (seen[cli_find(k_opts, N_OPTS, "cfg-scale")] && a.gen.cfg_scale < 0)
        return usage_error("--cfg-scale must be >= 0");
    if (seen[cli_find(k_opts, N_OPTS, "width")] && a.gen.width <= 0)
        return usage_error("--width must be a positive multiple of 8");
    if (seen[cli_find(k_opts, N_OPTS, "height")] && a.gen.height <= 0)
        return usage_error("--height must be a positive multiple of 8");
    if (a.warmup_steps < 0) return usage_error("--warmup-steps must be >= 0");
    if (a.gen.threads < 0) return usage_error("--threads must be >= 0 (0 = all cores)");
    if (a.comm_checkpoint < 1) return usage_error("--comm-checkpoint must be >= 1");
    a.gen.clip_skip = a.clip_skip > 1 ? a.clip_skip - 1 : 0;
    a.gen.vae_tiling = (df_vae_tiling)a.vae_tiling;
    if (df_gen_params_validate(NULL, &a.gen) != DF_OK) return usage_error(df_last_error());
    df_dist_params dp = df_dist_params_default();
    df_parallelism_parse(a.parallelism, &dp.parallelism);
    df_sync_mode_parse(a.sync_mode, &dp.sync_mode);
    df_split_scheme_parse(a.split_scheme, &dp.split_scheme);
    df_comm_dtype_parse(a.comm_dtype, &dp.comm_dtype);
    dp.warmup_steps = a.warmup_steps;
    dp.split_batch = !a.no_split_batch;
    dp.comm_checkpoint = a.comm_checkpoint;
    if (g_rank == 0) {
        if (check_writable(a.output, "output", err, sizeof err) != 0 ||
            (a.gen.save_latent &&
             check_writable(a.gen.save_latent, "latent", err, sizeof err) != 0)) {
            df_clear_error();
            if (g_size == 1) return runtime_error_abort(err);
            print_runtime_error(err);
            df_dist_abort(EXIT_RUNTIME);
        }
    }
    df_clear_error();

    df_log_set_level(a.quiet ? DF_LOG_WARN : (a.verbose ? DF_LOG_DEBUG : DF_LOG_INFO));
    df_set_threads(a.gen.threads); // 0: all cores

    double t0 = df_time_s();
    df_model *m = NULL;
    df_status st = df_model_load(a.model, &m);
    snprintf(err, sizeof err, "cannot load model '%s'", a.model);
    if (agree_failure(st != DF_OK, err)) {
        df_model_free(m);
        return finish(EXIT_RUNTIME);
    }
    double t_load = df_time_s() - t0;
    if (df_gen_params_validate(m, &a.gen) != DF_OK) {
        int rc = usage_error(df_last_error());
        df_model_free(m);
        return rc;
    }
    if (g_size > 1 && df_generate_dist_check(m, &a.gen, &dp, g_size) != DF_OK) {
        int rc = usage_error(df_last_error());
        df_model_free(m);
        return rc;
    }
    char desc[1024];
    df_model_describe(m, desc, sizeof desc);
    df_log(DF_LOG_INFO, "model: %s (loaded in %.2f s)", desc, t_load);
    {
        int w, h;
        float g;
        const char *smp;
        df_model_defaults(m, &w, &h, &g, &smp);
        char seed[32];
        if (a.gen.seed >= 0) snprintf(seed, sizeof seed, "%lld", (long long)a.gen.seed);
        else snprintf(seed, sizeof seed, "random");
        df_log(DF_LOG_INFO, "%dx%d, %d steps, sampler %s, cfg %g, seed %s, threads %d",
               a.gen.width ? a.gen.width : w, a.gen.height ? a.gen.height : h, a.gen.steps,
               a.gen.sampler ? a.gen.sampler : smp,
               (double)(a.gen.cfg_scale >= 0 ? a.gen.cfg_scale : g), seed, df_get_threads());
        if (g_size > 1)
            df_log(DF_LOG_INFO, "%d ranks: %s, sync mode %s, warm-up %d, %s, checkpoint %d, "
                   "comm %s", g_size, df_parallelism_name(dp.parallelism),
                   df_sync_mode_name(dp.sync_mode), dp.warmup_steps,
                   dp.split_batch ? "split batch" : "no split batch", dp.comm_checkpoint,
                   df_comm_dtype_name(dp.comm_dtype));
    }

    progress pr = {.tty = isatty(fileno(stderr)), .last_tenth = -1};
    if (!a.quiet) {
        a.gen.progress = on_progress;
        a.gen.user = &pr;
    }
    df_image img = {0};
    df_gen_info info;
    df_dist_step_stats stats;
    int tensors = 0;
    memset(&stats, 0, sizeof stats);
    if (g_size > 1) st = df_generate_dist(m, &a.gen, &dp, &img, &info, &stats, &tensors);
    else st = df_generate(m, &a.gen, &img, &info);
    if (st != DF_OK) {
        if (pr.tty && !a.quiet) fputc('\n', stderr);
        df_model_free(m);
        return runtime_error_abort("generation failed");
    }
    if (g_rank == 0) {
        if (a.gen.seed < 0) df_log(DF_LOG_INFO, "seed: %lld", (long long)info.seed);
        if (df_image_save_png(&img, a.output, info.infotext) != DF_OK) {
            snprintf(err, sizeof err, "cannot write '%s'", a.output);
            df_image_free(&img);
            df_model_free(m);
            return runtime_error_abort(err);
        }
        const df_timings *t = &info.timings;
        df_log(DF_LOG_INFO,
               "timings: text encode %.3f s, denoise %.3f s (%.3f s/step), VAE %.3f s%s, "
               "total %.3f s (+ load %.2f s); peak RSS %.0f MiB",
               t->text_encode_s, t->denoise_s,
               t->unet_calls ? t->denoise_s / t->unet_calls : 0.0, t->vae_s,
               info.vae_tiled ? " (tiled)" : "", t->total_s, t_load, df_peak_rss_mb());
        if (a.stats && g_size > 1) print_stats(&stats, info.timings.unet_calls, tensors, &dp);
        printf("%s\n", a.output);
    }
    df_image_free(&img);
    df_model_free(m);
    return finish(0);
}
