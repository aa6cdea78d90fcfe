// The command-line core shared by `distrifuse` and `distrifuse-bench`: the options both take
// (one table, in pieces the programs place in their own option tables), their validation, and
// the rank / exit protocol of a program that may run under mpiexec.
//
// A program's argument struct starts with a `cli_common c;` member; the CLI_CORE_*_ROWS(T)
// macros expand to cli_opt rows whose offsets point into T.c, so the parser (args.h) and the
// help text read one table. Enum options take the library's name tables (CLI_ENUM).
//
// Exit protocol (docs/design.md "CLI core"):
//   usage error   exit 2: detected identically on every rank; rank 0 prints one line
//                 "PROG: error: <detail>" (cli_usage_error)
//   runtime error exit 1: a failure every rank reaches is agreed on (cli_agree_failure: the
//                 lowest failing rank prints "[rR/N] PROG: error: <what>: <detail>"); a failure
//                 the other ranks may not see (they may wait in a collective) ends the whole
//                 job (cli_runtime_error_abort -> df_parallel_abort)
//   success       exit 0 after df_parallel_finalize on every rank (cli_finish)
#ifndef DF_TOOLS_COMMON_CLI_CORE_H
#define DF_TOOLS_COMMON_CLI_CORE_H

#include "args.h"

#include "distrifuse/engine.h"

#include <stddef.h>

enum { CLI_EXIT_RUNTIME = 1, CLI_EXIT_USAGE = 2 };

// --check-finite is on by default in builds without NDEBUG.
#ifdef NDEBUG
#    define CLI_CHECK_FINITE_DEFAULT 0
#    define CLI_CHECK_FINITE_HELP "off (a build with NDEBUG)"
#else
#    define CLI_CHECK_FINITE_DEFAULT 1
#    define CLI_CHECK_FINITE_HELP "on (a build without NDEBUG)"
#endif

// What the shared options set.
typedef struct cli_common {
    df_gen_params gen;      // library defaults, then the options
    df_parallel_params pp;  // parallel parameters (the distributed options, --cpu)
    const char *model;
    const char *band_weights; // --band-weights w0,w1,... | auto (parsed by cli_core_finish)
    float rank_timeout;       // --rank-timeout S (0 = off)
    int conv_algo;            // --conv-algo: df_load_params.conv_algo (df_conv_algo)
    int verbose, help, version;
} cli_common;

// Defaults: df_gen_params_default() with --check-finite's build default, and
// df_parallel_params_default().
cli_common cli_common_defaults(void);

#define CLI_OFF_(T, f) offsetof(T, c.f)

// -m/--model, -n/--negative-prompt
#define CLI_CORE_MODEL_ROWS(T)                                                                 \
    {CLI_STR, 'm', "model", "PATH", CLI_OFF_(T, model), 0, NULL, "",                          \
     "diffusers pipeline folder or single-file .safetensors checkpoint (SDXL or SD 1.x); "    \
     "required"},                                                                              \
    {CLI_STR, 'n', "negative-prompt", "TEXT", CLI_OFF_(T, gen.negative_prompt), 0, NULL,      \
     "none: SDXL uses zero embeddings, SD 1.x the empty prompt", "negative prompt"}

// -W, -H, --steps, --cfg-scale, --sampling-method
#define CLI_CORE_SAMPLING_ROWS(T)                                                              \
    {CLI_INT, 'W', "width", "N", CLI_OFF_(T, gen.width), 0, NULL,                             \
     "the model's: SDXL 1024, SD 1.5 512", "image width in pixels, a multiple of 8"},          \
    {CLI_INT, 'H', "height", "N", CLI_OFF_(T, gen.height), 0, NULL,                           \
     "the model's: SDXL 1024, SD 1.5 512", "image height in pixels, a multiple of 8"},         \
    {CLI_INT, 0, "steps", "N", CLI_OFF_(T, gen.steps), 0, NULL, NULL,                         \
     "number of sampling steps"},                                                              \
    {CLI_FLOAT, 0, "cfg-scale", "G", CLI_OFF_(T, gen.cfg_scale), 0, NULL,                     \
     "the model's: SDXL 5.0, SD 1.x 7.5",                                                      \
     "classifier-free guidance scale (guidance runs when G > 1)"},                            \
    {CLI_ENUM, 0, "sampling-method", "NAME", CLI_OFF_(T, gen.sampler), CLI_E_SAMPLER, NULL,   \
     "the model's scheduler config (SDXL euler, SD 1.5 pndm)", "sampler"}

// --no-parallel-vae
#define CLI_CORE_VAE_ROWS(T)                                                                   \
    {CLI_FLAG, 0, "no-parallel-vae", NULL, CLI_OFF_(T, gen.parallel_vae), 0, NULL, "",        \
     "under mpiexec: rank 0 decodes the whole image alone (default: every rank decodes a row " \
     "band, exact, with halo exchanges; rank 0 gathers the image)"}

// --check-finite, --no-check-finite, --compute, -t, -v, -h, --conv-algo, --cpu, --version
#define CLI_CORE_RUNTIME_ROWS(T)                                                               \
    {CLI_FLAG, 0, "check-finite", NULL, CLI_OFF_(T, gen.check_finite), 1, NULL,               \
     CLI_CHECK_FINITE_HELP,                                                                    \
     "stop at the first NaN / Inf in the UNet's activations or the latents: print the step "  \
     "and the layer, exit 1, write no file (without it the final latents are checked once "   \
     "and a warning printed)"},                                                                \
    {CLI_FLAG, 0, "no-check-finite", NULL, CLI_OFF_(T, gen.check_finite), 0, NULL, "",        \
     "do not check every step (the warning at the end stays)"},                               \
    {CLI_ENUM, 0, "compute", "TYPE", CLI_OFF_(T, gen.compute), CLI_E_COMPUTE, NULL, NULL,     \
     "UNet / VAE convs and linears: bf16 inputs with f32 accumulation where the CPU has "     \
     "AVX512_BF16 (else f32, with a note)"},                                          \
    {CLI_INT, 't', "threads", "N", CLI_OFF_(T, gen.threads), 0, NULL, "0 = all cores",        \
     "compute threads (per rank)"},                                                            \
    {CLI_FLAG, 'v', "verbose", NULL, CLI_OFF_(T, verbose), 1, NULL, "", "debug logging"},     \
    {CLI_FLAG, 'h', "help", NULL, CLI_OFF_(T, help), 1, NULL, "", "show this help and exit"}, \
    {CLI_ENUM, 0, "conv-algo", "ALGO", CLI_OFF_(T, conv_algo), CLI_E_CONV_ALGO, NULL, NULL,   \
     "stride-1 3x3 UNet convs: direct (im2col + GEMM), winograd (F(4x4,3x3) / F(2x2,3x3): "   \
     "fewer multiplications, rounding differs), auto (winograd where it measured faster)"},   \
    {CLI_ENUM, 0, "cpu", "VARIANT", CLI_OFF_(T, pp.cpu_variant), CLI_E_CPU, NULL, NULL,       \
     "vector kernels to run: auto = the best this CPU (and every MPI rank) supports"},        \
    {CLI_FLAG, 0, "version", NULL, CLI_OFF_(T, version), 1, NULL, "",                         \
     "print the version and exit"}

// The distributed options (used under mpiexec with more than one rank per image)
#define CLI_CORE_DIST_ROWS(T)                                                                  \
    {CLI_ENUM, 0, "parallelism", "MODE", CLI_OFF_(T, pp.parallelism), CLI_E_PARALLELISM,      \
     NULL, NULL,                                                                               \
     "patch: DistriFusion displaced patch parallelism; naive_patch: independent patches "     \
     "(baseline, visible seams); tensor: heads/channels split with all-reduces (baseline, "   \
     "exact; ranks per CFG group must divide the GroupNorm groups)"},                         \
    {CLI_ENUM, 0, "sync-mode", "MODE", CLI_OFF_(T, pp.sync_mode), CLI_E_SYNC_MODE, NULL,      \
     NULL, "what is exchanged after the warm-up steps (full_sync: every step synchronous)"},  \
    {CLI_INT, 0, "warmup-steps", "N", CLI_OFF_(T, pp.warmup_steps), 0, NULL, NULL,            \
     "steps 0..N run synchronously before the stale (asynchronous) exchange starts"},         \
    {CLI_FLAG, 0, "no-split-batch", NULL, CLI_OFF_(T, pp.split_batch), 0, NULL, "",           \
     "every rank computes both CFG halves of its patch (default: the ranks split into an "    \
     "uncond and a cond group; an odd N runs as --no-split-batch)"},                          \
    {CLI_ENUM, 0, "split-scheme", "SCHEME", CLI_OFF_(T, pp.split_scheme), CLI_E_SPLIT_SCHEME, \
     NULL, NULL, "naive_patch: how the image is cut"},                                        \
    {CLI_STR, 0, "band-weights", "W0,W1,...|auto", CLI_OFF_(T, band_weights), 0, NULL, "",    \
     "relative speed of each rank of a CFG group: band rows proportional (default: equal "    \
     "bands); auto: time step 0 per rank, re-plan the bands once after it"},          \
    {CLI_INT, 0, "comm-checkpoint", "N", CLI_OFF_(T, pp.comm_checkpoint), 0, NULL, NULL,      \
     "exchanged tensors per batched asynchronous all-gather (the original's is 60)"},         \
    {CLI_ENUM, 0, "comm-dtype", "TYPE", CLI_OFF_(T, pp.comm_dtype), CLI_E_COMM_DTYPE, NULL,   \
     NULL, "precision of the exchanged activations"},                                         \
    {CLI_ENUM, 0, "gn-compat", "MODE", CLI_OFF_(T, pp.gn_compat), CLI_E_GN_COMPAT, NULL,      \
     NULL,                                                                                     \
     "GroupNorm statistics of a patch: exact (a synchronous step equals the single process) " \
     "or original (the original DistriFusion's n/(n-1) local variance factor; reproduces "    \
     "its outputs)"},                                                                          \
    {CLI_ENUM, 0, "comm-progress", "MODE", CLI_OFF_(T, pp.progress), CLI_E_PROGRESS, NULL,    \
     NULL,                                                                                     \
     "how in-flight exchanges advance: none (only the final wait), test (MPI_Testsome at "    \
     "layer boundaries), thread (test + a polling thread; MPI_THREAD_MULTIPLE)"},             \
    {CLI_FLOAT, 0, "rank-timeout", "S", CLI_OFF_(T, rank_timeout), 0, NULL, "0 = off",        \
     "end the job with an error on every rank when no sampling step finished for S seconds "  \
     "(a rank that died or hangs)"}

// ---------------------------------------------------------------------------------------------
// The process: MPI bootstrap, rank, exit protocol

// df_parallel_init (launcher detection by tools/common/tool_env.h; MPI_THREAD_MULTIPLE when
// argv asks for --comm-progress thread), the SIGBUS handler. prog: the program name (kept).
// Returns 0, or the exit status after printing the error.
int cli_start(const char *prog, int *argc, char ***argv);
int cli_rank(void);
int cli_size(void);
const char *cli_prog(void);
// A cleanup run by cli_finish before MPI is finalised (frees the program's objects).
void cli_on_finish(void (*fn)(void));

// cleanup, df_parallel_finalize; returns rc.
int cli_finish(int rc);
// Rank 0 prints "PROG: error: msg"; every rank finishes with exit status 2.
int cli_usage_error(const char *msg);
// "[rR/N] PROG: error: what: <df_last_error()>" on this rank.
void cli_print_runtime_error(const char *what);
// A failure every rank reaches (failed = 1 on the failing ranks): the lowest failing rank
// prints, returns 1 everywhere if any rank failed, else 0.
int cli_agree_failure(int failed, const char *what);
// A failure the others may not see: print and end the whole job (exit 1).
int cli_runtime_error_abort(const char *what);

// Validation of the shared options after cli_parse (identical on every rank): values in range
// (--cfg-scale, -W, -H only when given), --band-weights into c->pp, --rank-timeout into
// c->pp.rank_timeout_s, df_gen_params_validate without a model. 0, or -1 with err set.
int cli_core_finish(cli_common *c, const cli_opt *opts, int n_opts, const int *seen, char *err,
                    size_t cap);

// The --rank-timeout watchdog for the coming generation(s): starts it (once) and arms it,
// installing the heartbeat in *gen. 0, or -1 when the thread could not start.
int cli_watchdog_begin(cli_common *c, df_gen_params *gen);

#endif // DF_TOOLS_COMMON_CLI_CORE_H
