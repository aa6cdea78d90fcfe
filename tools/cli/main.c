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
#include "faults.h"
#include "tool_env.h"
#include "args.h"

#include "distrifuse/df.h"

#include "core/core.h"
#include "core/cpu.h"
#include "pipeline/pipeline_dist.h"
#include "runtime/dist.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "distrifuse"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

// --check-finite is on by default in builds without NDEBUG.
#ifdef NDEBUG
#    define CHECK_FINITE_DEFAULT 0
#    define CHECK_FINITE_HELP "off (a build with NDEBUG)"
#else
#    define CHECK_FINITE_DEFAULT 1
#    define CHECK_FINITE_HELP "on (a build without NDEBUG)"
#endif

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
    const char *compute; // --compute f32|bf16 (df_compute_dtype)
    // Distributed options (used when started by mpiexec with more than one rank)
    const char *parallelism, *sync_mode, *split_scheme, *comm_dtype;
    const char *gn_compat; // "exact" | "original"
    int warmup_steps, no_split_batch, comm_checkpoint, stats;
    float rank_timeout; // seconds without a finished step before a rank gives up; 0 = off
    // Caption lists and batches (run_batch)
    const char *prompt_file, *output_dir;
    int batch_count, image_groups;
    int split[2]; // --split K N
    const char *band_weights; // --band-weights w0,w1,... | auto
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
    {CLI_FLAG, 0, "no-parallel-vae", NULL, OFF(gen.parallel_vae), 0, NULL, "",
     "under mpiexec: rank 0 decodes the whole image alone (default: every rank decodes a row "
     "band, exact, with halo exchanges; rank 0 gathers the image)"},

    {CLI_SECTION, 0, "Runtime", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_FLAG, 0, "check-finite", NULL, OFF(gen.check_finite), 1, NULL, CHECK_FINITE_HELP,
     "stop at the first NaN / Inf in the UNet's activations or the latents: print the step and "
     "the layer, exit 1, write no file (without it the final latents are checked once and a "
     "warning printed)"},
    {CLI_FLAG, 0, "no-check-finite", NULL, OFF(gen.check_finite), 0, NULL, "",
     "do not check every step (the warning at the end stays)"},
    {CLI_INT, 't', "threads", "N", OFF(gen.threads), 0, NULL, "0 = all cores",
     "compute threads"},
    {CLI_FLAG, 'v', "verbose", NULL, OFF(verbose), 1, NULL, "", "debug logging"},
    {CLI_FLAG, 'q', "quiet", NULL, OFF(quiet), 1, NULL, "",
     "only warnings and errors; no progress bar"},
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
    {CLI_FLOAT, 0, "rank-timeout", "S", OFF(rank_timeout), 0, NULL, "0 = off",
     "end the job with an error on every rank when no sampling step finished for S seconds "
     "(a rank that died or hangs)"},
    {CLI_FLAG, 0, "stats", NULL, OFF(stats), 1, NULL, "",
     "print communication statistics (time waiting, bytes, collectives) at the end"},

    {CLI_SECTION, 0, "Caption lists and batches (image i: seed SEED+i)", NULL, 0, 0, NULL, NULL,
     NULL},
    {CLI_STR, 0, "prompt-file", "FILE", OFF(prompt_file), 0, NULL, "none",
     "one image per caption: one caption per line, or a JSON array of strings, or a JSON "
     "object of strings (values in the order of their keys in the file); replaces -p"},
    {CLI_STR, 0, "output-dir", "DIR", OFF(output_dir), 0, NULL, "none",
     "write image i as DIR/{i:04d}.png (created if missing; -o is ignored); a complete PNG "
     "with the same parameters already there is skipped (resume)"},
    {CLI_INT, 'b', "batch-count", "N", OFF(batch_count), 0, NULL, NULL,
     "N images of the prompt, seeds SEED..SEED+N-1; without --output-dir named as "
     "stable-diffusion.cpp: -o out.png gives out.png, out_2.png, ..., out_N.png"},
    {CLI_INT_PAIR, 0, "split", "K N", OFF(split), 0, NULL, "0 1",
     "generate shard K of N (0 <= K < N): images [K*c, min((K+1)*c, n)) with c = ceil(n/N), "
     "keeping their index i (generate_coco.py --split)"},
    {CLI_INT, 0, "image-groups", "G", OFF(image_groups), 0, NULL, NULL,
     "mpiexec -n N: G groups of N/G ranks generate different images (G must divide N): group "
     "g = ranks [g*N/G, (g+1)*N/G) takes the images i with i mod G == g, its first rank "
     "writes them"},
};
#define N_OPTS ((int)(sizeof k_opts / sizeof k_opts[0]))

static cli_args cli_defaults(void) {
    cli_args a;
    memset(&a, 0, sizeof a);
    a.gen = df_gen_params_default();
    a.gen.check_finite = CHECK_FINITE_DEFAULT;
    a.output = "output.png";
    a.clip_skip = -1;
    a.vae_tiling = DF_VAE_TILE_AUTO;
    df_dist_params dp = df_dist_params_default();
    a.parallelism = df_parallelism_name(dp.parallelism);
    a.sync_mode = df_sync_mode_name(dp.sync_mode);
    a.split_scheme = df_split_scheme_name(dp.split_scheme);
    a.comm_dtype = df_comm_dtype_name(dp.comm_dtype);
    a.gn_compat = dp.gn_compat ? "original" : "exact";
    a.warmup_steps = dp.warmup_steps;
    a.comm_checkpoint = dp.comm_checkpoint;
    a.batch_count = 1;
    a.image_groups = 1;
    a.split[0] = 0;
    a.split[1] = 1;
    return a;
}

static void print_help(FILE *f) {
    cli_args d = cli_defaults();
    fprintf(f,
            "usage: " PROG " -m MODEL -p PROMPT [options]\n"
            "       " PROG " -m MODEL --prompt-file FILE --output-dir DIR [options]\n"
            "Text-to-image with SDXL / SD 1.x models on CPU (single process, or DistriFusion "
            "patch\nparallelism under mpiexec). Flags follow stable-diffusion.cpp.\n");
    cli_print_options(f, k_opts, N_OPTS, &d);
    fprintf(f, "\nExit status: 0 success, 1 runtime error, 2 usage error.\n");
}

// Process state for the exit paths: MPI rank / size and the world communicator (N > 1).
static int g_rank = 0, g_size = 1;
static df_comm *g_world = NULL;

static df_prompt_list *g_prompts = NULL; // --prompt-file

static int finish(int rc) {
    df_prompt_list_free(g_prompts);
    g_prompts = NULL;
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

// --rank-timeout: every rank's watchdog hears of each finished step; after the last one it is
// disarmed (rank 0 then decodes alone while the others wait).
static void on_heartbeat(void *user, int step, int n, double elapsed) {
    (void)user;
    (void)elapsed;
    df_tool_watchdog_beat();
    if (step >= n) df_tool_watchdog_disarm();
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
    df_log(DF_LOG_INFO,
           "comm bytes per step (rank 0, sent + received): halo %.0f, K/V %.0f, GroupNorm %.0f, "
           "tensor all-reduce %.0f (sum %.0f); output gather %.0f",
           (double)t->bytes_halo / n, (double)t->bytes_kv / n, (double)t->bytes_gn / n,
           (double)t->bytes_tp / n, (double)(t->bytes_sent + t->bytes_recv) / n,
           (double)t->bytes_output / n);
    char plan[1024];
    if (df_generate_dist_band_plan(plan, sizeof plan)) df_log(DF_LOG_INFO, "%s", plan);
}

// ---------------------------------------------------------------------------------------------
// Caption lists and batches (--prompt-file, --output-dir, -b, --split, --image-groups): the
// model, the communicators and the exchange plan (a df_dist_session per group of ranks) are
// built once for the whole list; image i is generated exactly as `distrifuse -p CAPTION_i
// -s SEED+i` with the same options on N/G ranks.

static int batch_mode(const cli_args *a) {
    return a->prompt_file || a->output_dir || a->batch_count != 1 || a->split[1] != 1 ||
           a->split[0] != 0 || a->image_groups != 1;
}

// Usage checks of the batch options (identical on every rank). Returns 1 with err set.
static int batch_usage_error(cli_args *a, const int *seen, char *err, size_t cap) {
    if (a->prompt_file && seen[cli_find(k_opts, N_OPTS, "prompt")]) {
        snprintf(err, cap, "give either -p/--prompt or --prompt-file, not both");
        return 1;
    }
    if (a->batch_count < 1) {
        snprintf(err, cap, "--batch-count must be >= 1 (got %d)", a->batch_count);
        return 1;
    }
    if (a->prompt_file && a->batch_count != 1) {
        snprintf(err, cap, "--batch-count applies to -p; a --prompt-file gives one image per "
                           "caption");
        return 1;
    }
    if (a->split[1] < 1 || a->split[0] < 0 || a->split[0] >= a->split[1]) {
        snprintf(err, cap, "--split K N needs 0 <= K < N (got %d %d)", a->split[0],
                 a->split[1]);
        return 1;
    }
    if (a->image_groups < 1 || g_size % a->image_groups != 0) {
        snprintf(err, cap, "--image-groups %d must divide the number of ranks (%d)",
                 a->image_groups, g_size);
        return 1;
    }
    if (a->output_dir && !*a->output_dir) {
        snprintf(err, cap, "empty --output-dir path");
        return 1;
    }
    if (batch_mode(a) && a->gen.save_latent) {
        snprintf(err, cap, "--save-latent writes the latents of one image; it cannot be used "
                           "with a caption list or a batch");
        return 1;
    }
    if (a->prompt_file) a->gen.prompt = ""; // set per image
    return 0;
}

// mkdir -p DIR. 0 on success, else -1 with err set.
static int make_dirs(const char *dir, char *err, size_t cap) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) {
        snprintf(err, cap, "output directory path too long");
        return -1;
    }
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c) continue;
        char keep = *c;
        *c = 0;
        struct stat sb;
        if (stat(p, &sb) != 0) {
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                snprintf(err, cap, "cannot create output directory '%s': %s", p,
                         strerror(errno));
                return -1;
            }
        } else if (!S_ISDIR(sb.st_mode)) {
            snprintf(err, cap, "cannot use output directory '%s': '%s' is not a directory", dir,
                     p);
            return -1;
        }
        *c = keep;
        if (!keep) break;
    }
    if (access(dir, W_OK) != 0) {
        snprintf(err, cap, "output directory '%s' is not writable", dir);
        return -1;
    }
    return 0;
}

static void batch_path(const cli_args *a, int i, char *buf, size_t cap) {
    if (a->output_dir) df_batch_dir_path(a->output_dir, i, buf, cap);
    else df_batch_output_path(a->output, i, buf, cap);
}

// INFO lines of the first rank of every image group (df_log prints INFO on rank 0 only).
static void DF_PRINTF(1, 2) leader_log(const char *fmt, ...) {
    if (df_log_get_level() < DF_LOG_INFO) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (g_size > 1) fprintf(stderr, "[r%d/%d] %s\n", g_rank, g_size, buf);
    else fprintf(stderr, "%s\n", buf);
    fflush(stderr);
}

static void fmt_seconds(double s, char *buf, size_t cap) {
    if (s < 120) snprintf(buf, cap, "%.1f s", s);
    else if (s < 7200) snprintf(buf, cap, "%.1f min", s / 60);
    else snprintf(buf, cap, "%.1f h", s / 3600);
}

static int run_batch(cli_args *a, df_model *m, df_dist_params *dp, double t_load,
                     const df_prompt_list *prompts) {
    (void)t_load;
    char err[1024];
    const int n = prompts ? df_prompt_list_count(prompts) : a->batch_count;
    int i0, i1;
    df_batch_shard(n, a->split[0], a->split[1], &i0, &i1);
    const int G = a->image_groups, per = g_size / G, grp = g_rank / per, lrank = g_rank % per;
    const int leader = lrank == 0;

    // the seed of image 0 (a random one drawn by rank 0 for the whole job)
    int64_t seed0 = a->gen.seed;
    if (seed0 < 0) {
        FILE *f = fopen("/dev/urandom", "rb");
        uint32_t v = 0;
        if (f) {
            if (fread(&v, sizeof v, 1, f) != 1) v = 0;
            fclose(f);
        }
        seed0 = v ? v : (int64_t)(time(NULL) & 0x7fffffff);
        if (g_size > 1 && df_comm_bcast(g_world, &seed0, sizeof seed0, 0) != DF_OK)
            return runtime_error_abort("MPI broadcast");
        df_log(DF_LOG_INFO, "seed: %lld (random; image i uses seed + i)", (long long)seed0);
    }

    // this group's images; resume: the group's first rank checks the existing files
    int n_mine = 0;
    for (int i = i0; i < i1; i++) n_mine += i % G == grp;
    int *todo = calloc((size_t)(n_mine > 0 ? n_mine : 1), sizeof *todo);
    unsigned char *skip = calloc((size_t)(n_mine > 0 ? n_mine : 1), 1);
    if (!todo || !skip) {
        free(todo);
        free(skip);
        df_model_free(m);
        return runtime_error_abort("out of memory");
    }
    for (int i = i0, k = 0; i < i1; i++)
        if (i % G == grp) todo[k++] = i;
    df_comm *gcomm = NULL; // the group's ranks (G > 1, N/G > 1)
    if (G > 1 && per > 1 && df_comm_split(g_world, grp, g_rank, &gcomm) != DF_OK) {
        free(todo);
        free(skip);
        df_model_free(m);
        return runtime_error_abort("cannot split the ranks into image groups");
    }
    int n_skip = 0;
    if (a->output_dir && leader) {
        char path[PATH_MAX + 16], info_text[sizeof ((df_gen_info *)0)->infotext];
        for (int k = 0; k < n_mine; k++) {
            df_gen_params q = a->gen;
            q.prompt = prompts ? df_prompt_list_get(prompts, todo[k]) : a->gen.prompt;
            q.seed = seed0 + todo[k];
            batch_path(a, todo[k], path, sizeof path);
            if (access(path, F_OK) != 0) continue;
            if (df_gen_infotext(m, &q, info_text, sizeof info_text) == DF_OK &&
                df_image_png_complete(path, info_text)) {
                skip[k] = 1;
            } else {
                df_log(DF_LOG_WARN, "%s is incomplete or from other parameters: regenerating",
                       path);
            }
            df_clear_error();
        }
    }
    df_comm *bc = gcomm ? gcomm : (per > 1 ? g_world : NULL); // the group's ranks
    if (bc && df_comm_bcast(bc, skip, (size_t)(n_mine > 0 ? n_mine : 1), 0) != DF_OK) {
        free(todo);
        free(skip);
        df_comm_destroy(gcomm);
        df_model_free(m);
        return runtime_error_abort("MPI broadcast");
    }
    for (int k = 0; k < n_mine; k++) n_skip += skip[k];
    if (g_rank == 0) {
        char shard[64] = "";
        if (a->split[1] > 1)
            snprintf(shard, sizeof shard, ", shard %d of %d", a->split[0], a->split[1]);
        df_log(DF_LOG_INFO, "batch: %d of %d images [%d, %d)%s, seeds %lld + i, to %s%s", i1 - i0,
               n, i0, i1, shard, (long long)seed0, a->output_dir ? a->output_dir : a->output,
               a->output_dir ? "/{i:04d}.png" : " (stable-diffusion.cpp -b names)");
        if (G > 1)
            df_log(DF_LOG_INFO, "%d image groups of %d rank%s (group g takes i mod %d == g)", G,
                   per, per > 1 ? "s" : "", G);
    }
    if (leader && n_skip)
        leader_log("resume: %d of %d images%s already complete, skipped", n_skip,
               n_mine, G > 1 ? " of this group" : "");

    df_dist_session *sess = NULL;
    if (per > 1) {
        dp->parent = gcomm; // NULL: the world
        if (df_dist_session_create(dp, NULL, NULL, &sess) != DF_OK) {
            free(todo);
            free(skip);
            df_comm_destroy(gcomm);
            df_model_free(m);
            return runtime_error_abort("cannot create the session");
        }
    }

    // ---- the images
    const int n_gen = n_mine - n_skip;
    int done = 0;
    double sum_lat = 0, sum_denoise = 0;
    const double t_start = df_time_s();
    for (int k = 0; k < n_mine; k++) {
        if (skip[k]) continue;
        const int i = todo[k];
        df_gen_params q = a->gen;
        q.prompt = prompts ? df_prompt_list_get(prompts, i) : a->gen.prompt;
        q.seed = seed0 + i;
        q.progress = NULL;
        q.user = NULL;
        df_image img = {0};
        df_gen_info info;
        const double ts = df_time_s();
        df_status st = sess ? df_generate_session(sess, m, &q, &img, &info)
                            : df_generate(m, &q, &img, &info);
        const double dt = df_time_s() - ts;
        if (st != DF_OK) {
            snprintf(err, sizeof err, "generation of image %d failed", i);
            free(todo);
            free(skip);
            df_model_free(m);
            return runtime_error_abort(err);
        }
        done++;
        if (leader) {
            char path[PATH_MAX + 16];
            batch_path(a, i, path, sizeof path);
            if (df_image_save_png(&img, path, info.infotext) != DF_OK) {
                snprintf(err, sizeof err, "cannot write '%s'", path);
                df_image_free(&img);
                free(todo);
                free(skip);
                df_model_free(m);
                return runtime_error_abort(err);
            }
            sum_lat += dt;
            sum_denoise += info.timings.denoise_s;
            const double el = df_time_s() - t_start;
            char eta[32], pre[24] = "";
            fmt_seconds(el / done * (n_gen - done), eta, sizeof eta);
            if (G > 1) snprintf(pre, sizeof pre, "group %d: ", grp);
            leader_log("%simage %d/%d: %s (seed %lld) in %.2f s (denoise %.2f s)  ETA %s", pre,
                       done, n_gen, path, (long long)q.seed, dt, info.timings.denoise_s, eta);
            printf("%s\n", path);
            fflush(stdout);
        }
        df_image_free(&img);
    }
    const double t_all = df_time_s() - t_start;
    df_dist_session_destroy(sess);
    df_comm_destroy(gcomm);
    dp->parent = NULL;
    free(todo);
    free(skip);

    // summary over the groups: images, summed latency / denoise of the writers, wall time
    double acc[4] = {leader ? (double)done : 0, leader ? sum_lat : 0, leader ? sum_denoise : 0,
                     leader ? (double)n_skip : 0};
    if (g_size > 1 && df_comm_allreduce_sum_f64(g_world, acc, 4) != DF_OK) {
        df_model_free(m);
        return runtime_error_abort("MPI summary");
    }
    double wall = t_all;
    if (g_size > 1) {
        // the slowest group's wall time
        double *all = calloc((size_t)g_size, sizeof *all);
        if (all && df_comm_allgather(g_world, &t_all, all, sizeof t_all) == DF_OK)
            for (int r = 0; r < g_size; r++)
                if (all[r] > wall) wall = all[r];
        free(all);
    }
    if (g_rank == 0) {
        const int n_done = (int)acc[0];
        df_log(DF_LOG_INFO,
               "batch: %d images generated, %d skipped, in %.2f s: %.1f images/hour; latency "
               "per image %.3f s (denoise %.3f s); peak RSS %.0f MiB",
               n_done, (int)acc[3], wall, wall > 0 ? n_done * 3600.0 / wall : 0.0,
               n_done ? acc[1] / n_done : 0.0, n_done ? acc[2] / n_done : 0.0,
               df_peak_rss_mb());
    }
    df_model_free(m);
    return finish(0);
}

int main(int argc, char **argv) {
    // MPI first (it may consume launcher arguments); a plain process runs without MPI.
    if (df_dist_init(&argc, &argv, 0, df_tool_launched_by_mpi()) != DF_OK) {
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

    cli_args a = cli_defaults();
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
    if (!a.gen.prompt && !a.prompt_file)
        return usage_error("no prompt given (-p TEXT or --prompt-file FILE; see --help)");
    if (batch_usage_error(&a, seen, err, sizeof err)) return usage_error(err);
    if (seen[cli_find(k_opts, N_OPTS, "cfg-scale")] && a.gen.cfg_scale < 0)
        return usage_error("--cfg-scale must be >= 0");
    if (seen[cli_find(k_opts, N_OPTS, "width")] && a.gen.width <= 0)
        return usage_error("--width must be a positive multiple of 8");
    if (seen[cli_find(k_opts, N_OPTS, "height")] && a.gen.height <= 0)
        return usage_error("--height must be a positive multiple of 8");
    if (a.warmup_steps < 0) return usage_error("--warmup-steps must be >= 0");
    if (a.gen.threads < 0) return usage_error("--threads must be >= 0 (0 = all cores)");
    if (a.comm_checkpoint < 1) return usage_error("--comm-checkpoint must be >= 1");
    if (!(a.rank_timeout >= 0)) return usage_error("--rank-timeout must be >= 0 (0 = off)");
    a.gen.clip_skip = a.clip_skip > 1 ? a.clip_skip - 1 : 0;
    a.gen.vae_tiling = (df_vae_tiling)a.vae_tiling;
    if (df_gen_params_validate(NULL, &a.gen) != DF_OK) return usage_error(df_last_error());
    df_dist_params dp = df_dist_params_default();
    df_parallelism_parse(a.parallelism, &dp.parallelism);
    df_sync_mode_parse(a.sync_mode, &dp.sync_mode);
    df_split_scheme_parse(a.split_scheme, &dp.split_scheme);
    df_comm_dtype_parse(a.comm_dtype, &dp.comm_dtype);
    dp.gn_compat = strcmp(a.gn_compat, "original") == 0;
    dp.warmup_steps = a.warmup_steps;
    dp.split_batch = !a.no_split_batch;
    const int group_n = g_size / (a.image_groups > 0 ? a.image_groups : 1);
    const int split_eff = dp.split_batch && group_n % 2 == 0; // odd N: runs without
    dp.comm_checkpoint = a.comm_checkpoint;
    if (a.band_weights && !df_band_weights_parse(a.band_weights, &dp, err, sizeof err))
        return usage_error(err);
    if (g_rank == 0) {
        if ((!a.output_dir && check_writable(a.output, "output", err, sizeof err) != 0) ||
            (a.output_dir && make_dirs(a.output_dir, err, sizeof err) != 0) ||
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

    if (a.prompt_file) {
        df_status ps = df_prompt_list_load(a.prompt_file, &g_prompts);
        snprintf(err, sizeof err, "cannot read the caption list");
        if (agree_failure(ps != DF_OK, err)) return finish(EXIT_RUNTIME);
        df_clear_error();
    }
    const df_prompt_list *prompts = g_prompts;

    double t0 = df_time_s();
    df_model *m = NULL;
    const df_load_params lp = df_tool_load_params(); // DF_DATA_DIR, DF_UNET_* (tool_env.h)
    df_status st = df_model_load_ex(a.model, &lp, &m);
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
    if (g_size / a.image_groups > 1 &&
        df_generate_dist_check(m, &a.gen, &dp, g_size / a.image_groups) != DF_OK) {
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
        if (g_size / a.image_groups > 1)
            df_log(DF_LOG_INFO, "%d ranks: %s, sync mode %s, warm-up %d, %s, checkpoint %d, "
                   "comm %s", g_size / a.image_groups, df_parallelism_name(dp.parallelism),
                   df_sync_mode_name(dp.sync_mode), dp.warmup_steps,
                   split_eff ? "split batch" : "no split batch", dp.comm_checkpoint,
                   df_comm_dtype_name(dp.comm_dtype));
    }

    if (batch_mode(&a)) return run_batch(&a, m, &dp, t_load, prompts);

    progress pr = {.tty = isatty(fileno(stderr)), .last_tenth = -1};
    if (!a.quiet) {
        a.gen.progress = on_progress;
        a.gen.user = &pr;
    }
    if (a.rank_timeout > 0) {
        if (df_tool_watchdog_start(a.rank_timeout) != 0)
            return runtime_error_abort("cannot start the --rank-timeout watchdog");
        a.gen.heartbeat = on_heartbeat;
        df_tool_watchdog_arm();
    }
    df_image img = {0};
    df_gen_info info;
    df_dist_step_stats stats;
    int tensors = 0;
    memset(&stats, 0, sizeof stats);
    if (g_size > 1) st = df_generate_dist(m, &a.gen, &dp, &img, &info, &stats, &tensors);
    else st = df_generate(m, &a.gen, &img, &info);
    df_tool_watchdog_disarm();
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
