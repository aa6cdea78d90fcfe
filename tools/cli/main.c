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
#include "cli_core.h"
#include "faults.h"
#include "tool_env.h"

#include "distrifuse/df.h"

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

// Everything the command line can set. df_gen_params holds the library defaults; CLI-only
// fields follow.
typedef struct cli_args {
    cli_common c; // the options shared with distrifuse-bench (tools/common/cli_core.h)
    const char *output;
    int clip_skip;  // sd.cpp / A1111 convention: 1 = last layer, 2 = penultimate; <= 0 unset
    int vae_tiling; // df_vae_tiling
    int quiet, stats;
    // Caption lists and batches (run_batch)
    const char *prompt_file, *output_dir;
    int batch_count;
    int split[2]; // --split K N
} cli_args;

#define OFF(f) offsetof(cli_args, f)

static const cli_opt k_opts[] = {
    {CLI_SECTION, 0, "Model and prompt", NULL, 0, 0, NULL, NULL, NULL},
    CLI_CORE_MODEL_ROWS(cli_args),
    {CLI_STR, 'p', "prompt", "TEXT", OFF(c.gen.prompt), 0, NULL, "", "the prompt; required"},
    {CLI_STR, 0, "prompt-2", "TEXT", OFF(c.gen.prompt_2), 0, NULL, "the prompt",
     "SDXL: prompt for the second text encoder"},
    {CLI_STR, 0, "negative-prompt-2", "TEXT", OFF(c.gen.negative_prompt_2), 0, NULL,
     "the negative prompt", "SDXL: negative prompt for the second text encoder"},

    {CLI_SECTION, 0, "Sampling", NULL, 0, 0, NULL, NULL, NULL},
    CLI_CORE_SAMPLING_ROWS(cli_args),
    {CLI_FLOAT, 0, "guidance-rescale", "PHI", OFF(c.gen.guidance_rescale), 0, NULL, NULL,
     "rescale the guided noise towards the conditional std, 0..1"},
    {CLI_I64, 's', "seed", "N", OFF(c.gen.seed), 0, NULL, NULL,
     "seed of the initial noise (torch CPU generator); -1 = random"},
    {CLI_INT, 0, "clip-skip", "N", OFF(clip_skip), 0, NULL, "-1 (unset = 1)",
     "skip the last N-1 layers of the text encoders (A1111 / stable-diffusion.cpp "
     "convention: 1 = none, 2 = one; = diffusers clip_skip N-1; SDXL counts from its usual "
     "penultimate layer)"},
    {CLI_STR, 0, "init-latent", "FILE", OFF(c.gen.init_latent), 0, NULL, "none",
     "start from this noise instead of the seed: .safetensors with one F32 tensor "
     "[1,4,H/8,W/8] (NCHW, before the scheduler's init sigma scaling)"},

    {CLI_SECTION, 0, "Output", NULL, 0, 0, NULL, NULL, NULL},
    {CLI_STR, 'o', "output", "FILE", OFF(output), 0, NULL, NULL,
     "PNG to write (with the generation parameters in a 'parameters' text chunk)"},
    {CLI_STR, 0, "save-latent", "FILE", OFF(c.gen.save_latent), 0, NULL, "none",
     "also write the final latents (before the VAE) as .safetensors, tensor 'latents' "
     "[1,4,H/8,W/8] F32"},
    {CLI_FLAG, 0, "vae-tiling", NULL, OFF(vae_tiling), DF_VAE_TILE_ON, NULL,
     "auto: tile only when the decode needs over 4 GiB",
     "decode the image in overlapping tiles (diffusers enable_vae_tiling)"},
    {CLI_FLAG, 0, "no-vae-tiling", NULL, OFF(vae_tiling), DF_VAE_TILE_OFF, NULL, "",
     "never tile the VAE decode"},
    CLI_CORE_VAE_ROWS(cli_args),

    {CLI_SECTION, 0, "Runtime", NULL, 0, 0, NULL, NULL, NULL},
    CLI_CORE_RUNTIME_ROWS(cli_args),
    {CLI_FLAG, 'q', "quiet", NULL, OFF(quiet), 1, NULL, "",
     "only warnings and errors; no progress bar"},

    {CLI_SECTION, 0, "Distributed (mpiexec -n N " PROG " ...; ignored in a single process)",
     NULL, 0, 0, NULL, NULL, NULL},
    CLI_CORE_DIST_ROWS(cli_args),
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
    {CLI_INT, 0, "image-groups", "G", OFF(c.pp.image_groups), 0, NULL, NULL,
     "mpiexec -n N: G groups of N/G ranks generate different images (G must divide N): group "
     "g = ranks [g*N/G, (g+1)*N/G) takes the images i with i mod G == g, its first rank "
     "writes them"},
};
#define N_OPTS ((int)(sizeof k_opts / sizeof k_opts[0]))

static cli_args cli_defaults(void) {
    cli_args a;
    memset(&a, 0, sizeof a);
    a.c = cli_common_defaults();
    a.output = "output.png";
    a.clip_skip = -1;
    a.vae_tiling = DF_VAE_TILE_AUTO;
    a.batch_count = 1;
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

static df_prompt_list *g_prompts = NULL; // --prompt-file
static df_engine *g_engine = NULL;       // the model, the communicators, the plans

static void cleanup(void) {
    df_engine_destroy(g_engine);
    g_engine = NULL;
    df_prompt_list_free(g_prompts);
    g_prompts = NULL;
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

static void print_stats(const df_engine *e, int steps) {
    const df_parallel_params *dp = df_engine_params(e);
    df_dist_step_stats st;
    df_engine_last_stats(e, &st);
    const df_dist_step_stats *t = &st;
    const int tensors = df_engine_comm_tensors(e);
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
    if (df_engine_band_plan(e, plan, sizeof plan)) df_log(DF_LOG_INFO, "%s", plan);
}

// ---------------------------------------------------------------------------------------------
// Caption lists and batches (--prompt-file, --output-dir, -b, --split, --image-groups): the
// model, the communicators and the exchange plan (the df_engine: one runtime per group of
// ranks) are built once for the whole list; image i is generated exactly as
// `distrifuse -p CAPTION_i -s SEED+i` with the same options on N/G ranks.

static int batch_mode(const cli_args *a) {
    return a->prompt_file || a->output_dir || a->batch_count != 1 || a->split[1] != 1 ||
           a->split[0] != 0 || a->c.pp.image_groups != 1;
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
    if (a->c.pp.image_groups < 1 || cli_size() % a->c.pp.image_groups != 0) {
        snprintf(err, cap, "--image-groups %d must divide the number of ranks (%d)",
                 a->c.pp.image_groups, cli_size());
        return 1;
    }
    if (a->output_dir && !*a->output_dir) {
        snprintf(err, cap, "empty --output-dir path");
        return 1;
    }
    if (batch_mode(a) && a->c.gen.save_latent) {
        snprintf(err, cap, "--save-latent writes the latents of one image; it cannot be used "
                           "with a caption list or a batch");
        return 1;
    }
    if (a->prompt_file) a->c.gen.prompt = ""; // set per image
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
    if (cli_size() > 1) fprintf(stderr, "[r%d/%d] %s\n", cli_rank(), cli_size(), buf);
    else fprintf(stderr, "%s\n", buf);
    fflush(stderr);
}

static void fmt_seconds(double s, char *buf, size_t cap) {
    if (s < 120) snprintf(buf, cap, "%.1f s", s);
    else if (s < 7200) snprintf(buf, cap, "%.1f min", s / 60);
    else snprintf(buf, cap, "%.1f h", s / 3600);
}

static int run_batch(cli_args *a, df_engine *e, const df_prompt_list *prompts) {
    df_model *m = df_engine_model(e);
    char err[1024];
    const int n = prompts ? df_prompt_list_count(prompts) : a->batch_count;
    int i0, i1;
    df_batch_shard(n, a->split[0], a->split[1], &i0, &i1);
    const int G = a->c.pp.image_groups, per = df_engine_group_size(e), grp = df_engine_group(e);
    const int leader = df_engine_is_output_rank(e);

    // the seed of image 0 (a random one drawn by rank 0 for the whole job)
    int64_t seed0 = a->c.gen.seed;
    if (seed0 < 0) {
        FILE *f = fopen("/dev/urandom", "rb");
        uint32_t v = 0;
        if (f) {
            if (fread(&v, sizeof v, 1, f) != 1) v = 0;
            fclose(f);
        }
        seed0 = v ? v : (int64_t)(time(NULL) & 0x7fffffff);
        if (df_world_bcast(&seed0, sizeof seed0, 0) != DF_OK)
            return cli_runtime_error_abort("MPI broadcast");
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
        return cli_runtime_error_abort("out of memory");
    }
    for (int i = i0, k = 0; i < i1; i++)
        if (i % G == grp) todo[k++] = i;
    int n_skip = 0;
    if (a->output_dir && leader) {
        char path[PATH_MAX + 16], info_text[sizeof ((df_gen_info *)0)->infotext];
        for (int k = 0; k < n_mine; k++) {
            df_gen_params q = a->c.gen;
            q.prompt = prompts ? df_prompt_list_get(prompts, todo[k]) : a->c.gen.prompt;
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
    if (df_engine_group_bcast(e, skip, (size_t)(n_mine > 0 ? n_mine : 1)) != DF_OK) {
        free(todo);
        free(skip);
        return cli_runtime_error_abort("MPI broadcast");
    }
    for (int k = 0; k < n_mine; k++) n_skip += skip[k];
    if (cli_rank() == 0) {
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

    // ---- the images
    const int n_gen = n_mine - n_skip;
    int done = 0;
    double sum_lat = 0, sum_denoise = 0;
    const double t_start = df_time_s();
    for (int k = 0; k < n_mine; k++) {
        if (skip[k]) continue;
        const int i = todo[k];
        df_gen_params q = a->c.gen;
        q.prompt = prompts ? df_prompt_list_get(prompts, i) : a->c.gen.prompt;
        q.seed = seed0 + i;
        q.progress = NULL;
        q.user = NULL;
        df_image img = {0};
        df_gen_info info;
        const double ts = df_time_s();
        df_status st = df_engine_generate(e, &q, &img, &info);
        const double dt = df_time_s() - ts;
        if (st != DF_OK) {
            snprintf(err, sizeof err, "generation of image %d failed", i);
            free(todo);
            free(skip);
            return cli_runtime_error_abort(err);
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
                return cli_runtime_error_abort(err);
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
    free(todo);
    free(skip);

    // summary over the groups: images, summed latency / denoise of the writers, wall time
    double acc[4] = {leader ? (double)done : 0, leader ? sum_lat : 0, leader ? sum_denoise : 0,
                     leader ? (double)n_skip : 0};
    if (df_world_allreduce_sum_f64(acc, 4) != DF_OK) {
        return cli_runtime_error_abort("MPI summary");
    }
    double wall = t_all;
    if (cli_size() > 1) {
        // the slowest group's wall time
        double *all = calloc((size_t)cli_size(), sizeof *all);
        if (all && df_world_allgather(&t_all, all, sizeof t_all) == DF_OK)
            for (int r = 0; r < cli_size(); r++)
                if (all[r] > wall) wall = all[r];
        free(all);
    }
    if (cli_rank() == 0) {
        const int n_done = (int)acc[0];
        df_log(DF_LOG_INFO,
               "batch: %d images generated, %d skipped, in %.2f s: %.1f images/hour; latency "
               "per image %.3f s (denoise %.3f s); peak RSS %.0f MiB",
               n_done, (int)acc[3], wall, wall > 0 ? n_done * 3600.0 / wall : 0.0,
               n_done ? acc[1] / n_done : 0.0, n_done ? acc[2] / n_done : 0.0,
               df_peak_rss_mb());
    }
    return cli_finish(0);
}

int main(int argc, char **argv) {
    int rc = cli_start(PROG, &argc, &argv); // MPI (under a launcher), the SIGBUS handler
    if (rc) return rc;
    cli_on_finish(cleanup);

    cli_args a = cli_defaults();
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
    if (!a.c.gen.prompt && !a.prompt_file)
        return cli_usage_error("no prompt given (-p TEXT or --prompt-file FILE; see --help)");
    if (batch_usage_error(&a, seen, err, sizeof err)) return cli_usage_error(err);
    a.c.gen.clip_skip = a.clip_skip > 1 ? a.clip_skip - 1 : 0;
    a.c.gen.vae_tiling = (df_vae_tiling)a.vae_tiling;
    if (cli_core_finish(&a.c, k_opts, N_OPTS, seen, err, sizeof err) != 0)
        return cli_usage_error(err);
    const df_parallel_params *pp = &a.c.pp;
    const int group_n = cli_size() / pp->image_groups;
    if (cli_rank() == 0) {
        if ((!a.output_dir && check_writable(a.output, "output", err, sizeof err) != 0) ||
            (a.output_dir && make_dirs(a.output_dir, err, sizeof err) != 0) ||
            (a.c.gen.save_latent &&
             check_writable(a.c.gen.save_latent, "latent", err, sizeof err) != 0)) {
            df_clear_error();
            if (cli_size() == 1) return cli_runtime_error_abort(err);
            cli_print_runtime_error(err);
            df_parallel_abort(CLI_EXIT_RUNTIME);
        }
    }
    df_clear_error();

    df_log_set_level(a.quiet ? DF_LOG_WARN : (a.c.verbose ? DF_LOG_DEBUG : DF_LOG_INFO));
    df_set_threads(a.c.gen.threads); // 0: all cores

    if (a.prompt_file) {
        df_status ps = df_prompt_list_load(a.prompt_file, &g_prompts);
        snprintf(err, sizeof err, "cannot read the caption list");
        if (cli_agree_failure(ps != DF_OK, err)) return cli_finish(CLI_EXIT_RUNTIME);
        df_clear_error();
    }
    const df_prompt_list *prompts = g_prompts;

    double t0 = df_time_s();
    df_load_params lp = df_tool_load_params(); // DF_DATA_DIR, DF_UNET_* (tool_env.h)
    lp.conv_algo = a.c.conv_algo;              // --conv-algo
    df_status st = df_engine_create(a.c.model, &lp, pp, df_tool_launched_by_mpi(), &g_engine);
    if (st != DF_OK) { // agreed on every rank; the lowest failing rank prints
        if (st != DF_ERR_PEER) {
            snprintf(err, sizeof err, "cannot load model '%s'", a.c.model);
            cli_print_runtime_error(err);
        }
        return cli_finish(CLI_EXIT_RUNTIME);
    }
    df_model *m = df_engine_model(g_engine);
    double t_load = df_time_s() - t0;
    if (df_engine_check(g_engine, &a.c.gen) != DF_OK) return cli_usage_error(df_last_error());
    char desc[1024];
    df_model_describe(m, desc, sizeof desc);
    df_log(DF_LOG_INFO, "model: %s (loaded in %.2f s)", desc, t_load);
    {
        int w, h;
        float g;
        const char *smp;
        df_model_defaults(m, &w, &h, &g, &smp);
        char seed[32];
        if (a.c.gen.seed >= 0) snprintf(seed, sizeof seed, "%lld", (long long)a.c.gen.seed);
        else snprintf(seed, sizeof seed, "random");
        df_log(DF_LOG_INFO, "%dx%d, %d steps, sampler %s, cfg %g, seed %s, threads %d",
               a.c.gen.width ? a.c.gen.width : w, a.c.gen.height ? a.c.gen.height : h,
               a.c.gen.steps, a.c.gen.sampler ? a.c.gen.sampler : smp,
               (double)(a.c.gen.cfg_scale >= 0 ? a.c.gen.cfg_scale : g), seed, df_get_threads());
        if (group_n > 1)
            df_log(DF_LOG_INFO, "%d ranks: %s, sync mode %s, warm-up %d, %s, checkpoint %d, "
                   "comm %s", group_n, df_parallelism_name(pp->parallelism),
                   df_sync_mode_name(pp->sync_mode), pp->warmup_steps,
                   df_engine_split_batch(g_engine) ? "split batch" : "no split batch",
                   pp->comm_checkpoint, df_comm_dtype_name(pp->comm_dtype));
    }

    if (batch_mode(&a)) return run_batch(&a, g_engine, prompts);

    progress pr = {.tty = isatty(fileno(stderr)), .last_tenth = -1};
    if (!a.quiet) {
        a.c.gen.progress = on_progress;
        a.c.gen.user = &pr;
    }
    if (cli_watchdog_begin(&a.c, &a.c.gen) != 0)
        return cli_runtime_error_abort("cannot start the --rank-timeout watchdog");
    df_image img = {0};
    df_gen_info info;
    st = df_engine_generate(g_engine, &a.c.gen, &img, &info);
    df_tool_watchdog_disarm();
    if (st != DF_OK) {
        if (pr.tty && !a.quiet) fputc('\n', stderr);
        return cli_runtime_error_abort("generation failed");
    }
    if (cli_rank() == 0) {
        if (a.c.gen.seed < 0) df_log(DF_LOG_INFO, "seed: %lld", (long long)info.seed);
        if (df_image_save_png(&img, a.output, info.infotext) != DF_OK) {
            snprintf(err, sizeof err, "cannot write '%s'", a.output);
            df_image_free(&img);
            return cli_runtime_error_abort(err);
        }
        const df_timings *t = &info.timings;
        df_log(DF_LOG_INFO,
               "timings: text encode %.3f s, denoise %.3f s (%.3f s/step), VAE %.3f s%s, "
               "total %.3f s (+ load %.2f s); peak RSS %.0f MiB",
               t->text_encode_s, t->denoise_s,
               t->unet_calls ? t->denoise_s / t->unet_calls : 0.0, t->vae_s,
               info.vae_tiled ? " (tiled)" : "", t->total_s, t_load, df_peak_rss_mb());
        if (a.stats && cli_size() > 1) print_stats(g_engine, info.timings.unet_calls);
        printf("%s\n", a.output);
    }
    df_image_free(&img);
    return cli_finish(0);
}
