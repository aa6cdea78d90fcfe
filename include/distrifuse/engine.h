// distrifuse public API: single-process and distributed (DistriFusion) generation alike.
// MPI-free: <mpi.h> is never needed to use it.
//
//     df_parallel_params pp = df_parallel_params_default();   // patch parallelism, ...
//     df_engine *e;
//     // launched: 1 when the program runs under mpiexec (the program decides; the library reads
//     // no environment). Without a launcher (or with one rank) the engine runs single-process.
//     if (df_engine_create("models/sdxl", NULL, &pp, launched, &e) != DF_OK) ...
//     df_gen_params p = df_gen_params_default();
//     p.prompt = "a red cube";
//     df_image img = {0};
//     df_gen_info info;
//     if (df_engine_generate(e, &p, &img, &info) == DF_OK && df_engine_is_output_rank(e))
//         df_image_save_png(&img, "cube.png", info.infotext);
//     df_image_free(&img);
//     df_engine_destroy(e); // finalises MPI if the engine initialised it
//
// The engine owns the model, the communicators, the exchange plan and the UNet band arenas;
// they are reused across df_engine_generate calls with the same size and CFG batch (a change
// rebuilds the runtime), so only the first generation pays for the planning. Every rank runs
// the same calls with the same arguments (collective); the output rank of each image group
// alone calls the progress / latent callbacks, writes save_latent and receives the image.
#ifndef DF_ENGINE_H
#define DF_ENGINE_H

#include "distrifuse/pipeline.h"
#include "distrifuse/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------
// Enumerations and their names. Each has one name table: _name() gives the canonical name
// ("?" out of range), _parse() returns 1 and sets *out for a known name, else 0.

typedef enum df_parallelism {
    DF_PAR_PATCH = 0,    // DistriFusion displaced patch parallelism
    DF_PAR_NAIVE_PATCH,  // independent patches, no exchange (baseline)
    DF_PAR_TENSOR,       // tensor parallelism (spec §4.2): heads/channels split, all-reduces
    DF_PAR_COUNT
} df_parallelism;
const char *df_parallelism_name(df_parallelism p); // "patch", "naive_patch", "tensor"
int df_parallelism_parse(const char *s, df_parallelism *out);

typedef enum df_sync_mode {
    DF_SYNC_CORRECTED_ASYNC_GN = 0, // stale global GN moments + fresh-minus-stale local correction
    DF_SYNC_SYNC_GN,                // GN all-reduced every step; conv/attn stale
    DF_SYNC_STALE_GN,               // stale GN moments with the own slot fresh
    DF_SYNC_SEPARATE_GN,            // local GN after warm-up
    DF_SYNC_FULL_SYNC,              // every step synchronous ("Sync. PP")
    DF_SYNC_NO_SYNC,                // nothing exchanged after warm-up (frozen halos/KV, local GN)
    DF_SYNC_COUNT
} df_sync_mode;
const char *df_sync_mode_name(df_sync_mode m); // "corrected_async_gn", ...
int df_sync_mode_parse(const char *s, df_sync_mode *out);

typedef enum df_split_scheme {
    DF_SPLIT_ROW = 0,   // naive patch: bands of rows
    DF_SPLIT_COL,       // naive patch: bands of columns
    DF_SPLIT_ALTERNATE, // rows on even steps, columns on odd steps
    DF_SPLIT_COUNT
} df_split_scheme;
const char *df_split_scheme_name(df_split_scheme s); // "row", "col", "alternate"
int df_split_scheme_parse(const char *s, df_split_scheme *out);

typedef enum df_comm_dtype {
    DF_COMM_F32 = 0, // exchanged activations in f32 (default, exact)
    DF_COMM_F16,     // exchanged activations in IEEE half (half the bytes)
    DF_COMM_F64,     // used internally for GroupNorm moments (always f64); not a user choice
    DF_COMM_DTYPE_COUNT
} df_comm_dtype;
#define DF_COMM_DTYPE_USER_COUNT 2 // the user-selectable ones: f32, f16
const char *df_comm_dtype_name(df_comm_dtype t);            // "f32", "f16", "f64"
int df_comm_dtype_parse(const char *s, df_comm_dtype *out); // 1 if known

typedef enum df_progress {
    DF_PROGRESS_NONE = 0, // only MPI_Wait at the consumer (no overlap on Open MPI)
    DF_PROGRESS_TEST,     // MPI_Testsome at every layer boundary (default)
    DF_PROGRESS_THREAD,   // TEST + a polling thread (requires MPI_THREAD_MULTIPLE)
    DF_PROGRESS_COUNT
} df_progress;
const char *df_progress_name(df_progress p); // "none", "test", "thread"
int df_progress_parse(const char *s, df_progress *out);

typedef enum df_gn_compat {
    DF_GN_EXACT = 0,    // a synchronous step equals the single-process model
    DF_GN_ORIGINAL = 1, // the original DistriFusion's n/(n-1) local variance factor
    DF_GN_COMPAT_COUNT
} df_gn_compat;
const char *df_gn_compat_name(df_gn_compat g); // "exact", "original"
int df_gn_compat_parse(const char *s, df_gn_compat *out);

// Kernel variants (the vector kernels are compiled for each; one runs, chosen once).
typedef enum df_cpu_variant {
    DF_CPU_REF = 0,
    DF_CPU_AVX2 = 1,
    DF_CPU_AVX512 = 2,
    DF_CPU_VARIANT_COUNT,
    DF_CPU_AUTO = -1 // the best this CPU (and, under MPI, every rank) supports
} df_cpu_variant;
const char *df_cpu_variant_name(df_cpu_variant v); // "ref", "avx2", "avx512", "auto"
int df_cpu_variant_parse(const char *s, df_cpu_variant *out); // "auto" too
// Selects the kernels (process-wide, set once by the program). Returns 0, or -1 with a one-line
// message in err when the name is unknown or the CPU lacks them.
int df_cpu_apply_option(const char *name, char *err, int errlen);
df_cpu_variant df_cpu_variant_get(void); // the variant running now
const char *df_cpu_describe(void);       // "avx512 (AMD EPYC ...: avx512f ...)"

// ---------------------------------------------------------------------------------------------
// Parallel parameters

#define DF_MAX_BAND_WEIGHTS 256

typedef struct df_parallel_params {
    df_parallelism parallelism; // default patch
    df_sync_mode sync_mode;     // default corrected_async_gn
    int warmup_steps;           // W: steps 0..W synchronous (default 4)
    int split_batch;            // CFG halves on two rank groups (default 1; an odd number of
                                // ranks per image group runs without)
    int comm_checkpoint;        // entries per batched asynchronous all-gather (default 5; the
                                // original DistriFusion's is 60; results do not depend on it)
    df_comm_dtype comm_dtype;   // f32 (default) or f16 for the exchanged activations
    df_gn_compat gn_compat;     // default exact
    df_split_scheme split_scheme; // naive patch (default row)
    df_progress progress;       // default test (thread needs MPI_THREAD_MULTIPLE: pass
                                // thread_multiple = 1 to df_parallel_init)
    int n_band_weights;         // 0: equal bands; else one weight per patch of a CFG group
    double band_weights[DF_MAX_BAND_WEIGHTS]; // relative speeds (> 0)
    int band_weights_auto;      // 1: time step 0 per rank and re-plan the bands once after it
    int halo_allgather;         // 1: conv halos inside the all-gather (default 0: neighbours)
    int parallel_vae;           // 1: the VAE decode split into one row band per rank of the
                                // image group (default 1; also df_gen_params.parallel_vae)
    int image_groups;           // G groups of N/G ranks generate different images (default 1;
                                // G must divide the number of ranks)
    df_cpu_variant cpu_variant; // kernels (default DF_CPU_AUTO); applied by df_engine_create
    df_compute_dtype compute;   // compute dtype of the generations whose df_gen_params.compute
                                // is the default (DF_COMPUTE_F32) (default DF_COMPUTE_F32)
    double rank_timeout_s;      // > 0: a rank that finishes no step for this long counts as
                                // dead. The library never exits: the program enforces it on
                                // the heartbeat callback (tools/common); default 0 = off
} df_parallel_params;

df_parallel_params df_parallel_params_default(void);
// Parses "w0,w1,..." (numbers > 0) or "auto" into p. Returns 1, else 0 with a message in err.
int df_parallel_band_weights_parse(const char *s, df_parallel_params *p, char *err, size_t cap);

// Per-step statistics of one rank (times in seconds, bytes logical per rank).
typedef struct df_dist_step_stats {
    int step;
    int sync;             // 1 if the step was synchronous
    double t_total;       // whole evaluation
    double t_compute;     // model forward minus time inside the comm manager
    double t_wait;        // blocked: waits on in-flight gathers + blocking exchanges
    double t_progress;    // MPI_Testsome polls and launches
    double t_gather;      // final noise-prediction all-gather
    uint64_t bytes_sent;  // patch exchanges / tensor-parallel all-reduces (not the output gather)
    uint64_t bytes_recv;
    uint64_t bytes_gather; // output gather, received
    int n_collectives;
    int n_waits_blocked;
    // bytes_sent + bytes_recv split by kind (they sum to it exactly): conv halos, attention
    // K/V, GroupNorm moments / sums, tensor-parallel all-reduces; and the output gather
    // (sent + received, not part of bytes_sent / bytes_recv)
    uint64_t bytes_halo, bytes_kv, bytes_gn, bytes_tp, bytes_output;
} df_dist_step_stats;

// ---------------------------------------------------------------------------------------------
// Process bootstrap and whole-job collectives
//
// df_parallel_init initialises MPI when `launched` (the process was started by an MPI launcher;
// the program decides it) and MPI is not initialised yet; a host program that initialised MPI
// itself keeps it (nothing is finalised for it). Without a launcher the process is one rank and
// never touches MPI. Idempotent. df_engine_create calls it when the program has not.
df_status df_parallel_init(int *argc, char ***argv, int thread_multiple, int launched);
// Frees what df_parallel_init made and finalises MPI if it initialised it. Every rank calls it
// on success (a rank that exits without it makes mpiexec report the job as failed).
df_status df_parallel_finalize(void);
// Ends every rank of the job with a non-zero status (MPI_Abort); returns without MPI (the
// caller exits). For a failure that the other ranks may not see (they wait in a collective).
void df_parallel_abort(int code);
int df_world_rank(void); // 0 without MPI
int df_world_size(void); // 1 without MPI
// Collectives over every rank of the job (no-ops in one process). Errors: DF_ERR_COMM.
df_status df_world_barrier(void);
df_status df_world_allreduce_max_i32(int *buf, size_t n);   // in place
df_status df_world_allreduce_sum_f64(double *buf, size_t n); // in place
df_status df_world_allgather(const void *send, void *recv, size_t bytes);
df_status df_world_bcast(void *buf, size_t bytes, int root);

// ---------------------------------------------------------------------------------------------
// The engine

typedef struct df_engine df_engine;

// Creates the engine: df_parallel_init if needed, checks the parameters against the number of
// ranks (DF_ERR_ARG, identical on every rank), applies pp->cpu_variant, builds the world and
// image-group communicators and loads the model (lp NULL: defaults). Collective. A failure on
// any rank is a failure on every rank: the lowest failing rank gets its own error, the others
// DF_ERR_PEER ("rank k failed"). *out is NULL on failure.
df_status df_engine_create(const char *model, const df_load_params *lp,
                           const df_parallel_params *pp, int launched, df_engine **out);
// Collective when a runtime exists (frees communicators); finalises MPI when this engine
// initialised it. Accepts NULL.
void df_engine_destroy(df_engine *e);

df_model *df_engine_model(df_engine *e);                        // borrowed
const df_parallel_params *df_engine_params(const df_engine *e);
int df_engine_rank(const df_engine *e);         // rank in the job
int df_engine_size(const df_engine *e);         // ranks in the job
int df_engine_group(const df_engine *e);        // this rank's image group
int df_engine_group_size(const df_engine *e);   // ranks per image group (N / image_groups)
int df_engine_is_output_rank(const df_engine *e); // 1 on the first rank of each image group
// Broadcast from the output rank of this rank's image group to its other ranks.
df_status df_engine_group_bcast(df_engine *e, void *buf, size_t bytes);
// 1 when split batch is effective (asked and an even number of ranks per group).
int df_engine_split_batch(const df_engine *e);

// Checks, before any collective, that the image group can run a generation with these
// parameters: df_gen_params_validate, the rank topology, every patch band >= 1 row at the
// deepest UNet level (else the message names the largest rank count), the number of band
// weights, the tensor-parallel degree. Pure arithmetic, identical on every rank. DF_ERR_ARG /
// DF_ERR_SHAPE with the reason.
df_status df_engine_check(const df_engine *e, const df_gen_params *p);

// Called on every rank after each UNet evaluation: step = 0-based model call, eval_s = wall
// time of the evaluation (distributed: including its exchanges and the output gather), st =
// this rank's statistics of that step (single process: sync = 1, t_total = t_compute = eval_s,
// everything else 0). Valid during the call only. fn NULL: none.
typedef void (*df_engine_step_fn)(void *user, int step, double eval_s,
                                  const df_dist_step_stats *st);
void df_engine_set_step_callback(df_engine *e, df_engine_step_fn fn, void *user);

// One generation on this rank's image group (collective over it): the prompt encoding, the
// scheduler and the loop run on every rank with identical inputs (a random seed is drawn by the
// group's output rank and shared), the UNet evaluation is distributed. The output rank receives
// the image (unless p->decode == 0) and calls the progress / latent callbacks; the heartbeat
// callback runs on every rank. After a failure the runtime may be mid-step on some ranks:
// abort the job (df_parallel_abort) or destroy the engine.
df_status df_engine_generate(df_engine *e, const df_gen_params *p, df_image *image,
                             df_gen_info *info);

// This rank's statistics summed over the steps of the last generation (zero in one process).
void df_engine_last_stats(const df_engine *e, df_dist_step_stats *out);
// Exchanged tensors of the current plan (0 before the first generation or in one process).
int df_engine_comm_tensors(const df_engine *e);
// One line describing the current band plan, rows per rank per level ("rows per band: level 0
// (64): 22/21/21, ..."); returns 1 if the bands are uneven (0 and "" without a runtime).
int df_engine_band_plan(const df_engine *e, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif // DF_ENGINE_H
