// distrifuse: text-to-image command line (stable-diffusion.cpp flag names).
//
//   distrifuse -m MODEL -p "prompt" [-n "negative"] [-W 1024 -H 1024] [--steps 20]
//              [--cfg-scale G] [--sampling-method euler] [-s SEED] [-o output.png] ...
//
// Exit codes: 0 ok, 1 runtime failure (unreadable model, I/O), 2 usage error (bad option or
// value). Errors are one line on stderr: "distrifuse: error: <detail>". Logs and the progress
// bar go to stderr; stdout receives only the path of the written image.
// This is the only place (with the other tools) that calls exit().
#include "args.h"

#include "distrifuse/df.h"

#include "core/core.h"

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
    // Distributed options (hooks): the MPI runtime adds its fields here and its entries to the
    // "Distributed" section of the table below; main() hands them to the runtime.
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
     "model default: SDXL 1024, SD 1.5 512", "image width in pixels, a multiple of 8"},
    {CLI_INT, 'H', "height", "N", OFF(gen.height), 0, NULL,
     "model default: SDXL 1024, SD 1.5 512", "image height in pixels, a multiple of 8"},
    {CLI_INT, 0, "steps", "N", OFF(gen.steps), 0, NULL, NULL, "number of sampling steps"},
    {CLI_FLOAT, 0, "cfg-scale", "G", OFF(gen.cfg_scale), 0, NULL,
     "model default: SDXL 5.0, SD 1.x 7.5",
     "classifier-free guidance scale (guidance runs when G > 1)"},
    {CLI_FLOAT, 0, "guidance-rescale", "PHI", OFF(gen.guidance_rescale), 0, NULL, NULL,
     "rescale the guided noise towards the conditional std, 0..1"},
    {CLI_CHOICE, 0, "sampling-method", "NAME", OFF(gen.sampler), 0, SAMPLERS,
     "the model's scheduler config (SDXL euler, SD 1.5 pndm)", "sampler"},
    {CLI_I64, 's', "seed", "N", OFF(gen.seed), 0, NULL, NULL,
     "seed of the initial noise (torch CPU generator); -1 = random"},
    {CLI_INT, 0, "clip-skip", "N", OFF(clip_skip), 0, NULL, "-1 (unset = 1)",
     "use the output of CLIP layer -N: 1 = last layer, 2 = penultimate (A1111 / "
     "stable-diffusion.cpp convention; SDXL always starts from the penultimate layer)"},
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
    {CLI_FLAG, 0, "version", NULL, OFF(version), 1, NULL, "", "print the version and exit"},

    // {CLI_SECTION, 0, "Distributed (mpiexec -n N " PROG " ...)", ...},
    // --parallelism, --sync-mode, --warmup-steps, --no-split-batch, --comm-checkpoint,
    // --comm-dtype, --stats: added with the MPI runtime (fields in cli_args above).
};
#define N_OPTS ((int)(sizeof k_opts / sizeof k_opts[0]))

static cli_args cli_defaults(void) {
    cli_args a;
    memset(&a, 0, sizeof a);
    a.gen = df_gen_params_default();
    a.output = "output.png";
    a.clip_skip = -1;
    a.vae_tiling = DF_VAE_TILE_AUTO;
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

static int usage_error(const char *msg) {
    fprintf(stderr, PROG ": error: %s\n", msg);
    return EXIT_USAGE;
}

static int runtime_error(const char *what) {
    fprintf(stderr, PROG ": error: %s%s%s\n", what, *df_last_error() ? ": " : "",
            df_last_error());
    return EXIT_RUNTIME;
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

int main(int argc, char **argv) {
    cli_args a = cli_defaults();
    int seen[N_OPTS];
    char err[1024];
    if (cli_parse(k_opts, N_OPTS, &a, argc, argv, seen, err, sizeof err) != 0)
        return usage_error(err);
    if (a.help) {
        print_help(stdout);
        return 0;
    }
    if (a.version) {
        printf(PROG " " DF_VERSION_STRING "\n");
        return 0;
    }
    if (!a.model) return usage_error("no model given (-m PATH; see --help)");
    if (!a.gen.prompt) return usage_error("no prompt given (-p TEXT; see --help)");
    if (seen[cli_find(k_opts, N_OPTS, "cfg-scale")] && a.gen.cfg_scale < 0)
        return usage_error("--cfg-scale must be >= 0");
    if (seen[cli_find(k_opts, N_OPTS, "width")] && a.gen.width <= 0)
        return usage_error("--width must be a positive multiple of 8");
    if (seen[cli_find(k_opts, N_OPTS, "height")] && a.gen.height <= 0)
        return usage_error("--height must be a positive multiple of 8");
    a.gen.clip_skip = a.clip_skip > 1 ? a.clip_skip - 1 : 0;
    a.gen.vae_tiling = (df_vae_tiling)a.vae_tiling;
    if (df_gen_params_validate(NULL, &a.gen) != DF_OK) return usage_error(df_last_error());
    if (check_writable(a.output, "output", err, sizeof err) != 0) return runtime_error(err);
    if (a.gen.save_latent && check_writable(a.gen.save_latent, "latent", err, sizeof err) != 0)
        return runtime_error(err);
    df_clear_error();

    df_log_set_level(a.quiet ? DF_LOG_WARN : (a.verbose ? DF_LOG_DEBUG : DF_LOG_INFO));
    if (a.gen.threads > 0) df_set_threads(a.gen.threads);

    double t0 = df_time_s();
    df_model *m = NULL;
    if (df_model_load(a.model, &m) != DF_OK) {
        snprintf(err, sizeof err, "cannot load model '%s'", a.model);
        return runtime_error(err);
    }
    double t_load = df_time_s() - t0;
    if (df_gen_params_validate(m, &a.gen) != DF_OK) {
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
    }

    progress pr = {.tty = isatty(fileno(stderr)), .last_tenth = -1};
    if (!a.quiet) {
        a.gen.progress = on_progress;
        a.gen.user = &pr;
    }
    df_image img = {0};
    df_gen_info info;
    df_status st = df_generate(m, &a.gen, &img, &info);
    if (st != DF_OK) {
        if (pr.tty && !a.quiet) fputc('\n', stderr);
        int rc = runtime_error("generation failed");
        df_model_free(m);
        return rc;
    }
    if (a.gen.seed < 0) df_log(DF_LOG_INFO, "seed: %lld", (long long)info.seed);
    if (df_image_save_png(&img, a.output, info.infotext) != DF_OK) {
        snprintf(err, sizeof err, "cannot write '%s'", a.output);
        int rc = runtime_error(err);
        df_image_free(&img);
        df_model_free(m);
        return rc;
    }
    const df_timings *t = &info.timings;
    df_log(DF_LOG_INFO,
           "timings: text encode %.3f s, denoise %.3f s (%.3f s/step), VAE %.3f s%s, "
           "total %.3f s (+ load %.2f s); peak RSS %.0f MiB",
           t->text_encode_s, t->denoise_s, t->unet_calls ? t->denoise_s / t->unet_calls : 0.0,
           t->vae_s, info.vae_tiled ? " (tiled)" : "", t->total_s, t_load, df_peak_rss_mb());
    printf("%s\n", a.output);
    df_image_free(&img);
    df_model_free(m);
    return 0;
}
