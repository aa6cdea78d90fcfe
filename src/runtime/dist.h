// Distributed UNet evaluation: topology (spec §1.2), DistriFusion displaced patch parallelism
// (§2, §3), naive patch (§4.1), and the per-step evaluation the pipeline calls.
//
// Every rank holds the whole model and the full latent and runs the scheduler itself; only the
// UNet evaluation is distributed. One step:
//
//   df_dist_eval(d, model, step, x_full, timestep, eps_full)
//     x_full   [n_img][H][W][Cin]  the model input of every CFG half (0 = uncond, 1 = cond),
//                                  identical on all ranks (NHWC)
//     eps_full [n_img][H][W][Cout] the noise prediction of the whole batch, on every rank
//
// Topology (split_batch and CFG, N > 1): two batch groups of P = N/2 ranks; ranks [0, P) compute
// image 0 (uncond), ranks [P, N) image 1 (cond); patch index = rank mod P. Without split_batch
// (or CFG off, or N = 1): one group of P = N ranks, each computing every image on its band.
// Patch i covers latent rows [i*H/P, (i+1)*H/P) at every resolution level; the deepest feature
// map (H >> n_down rows) must split evenly (any N, not only powers of two).
//
// Tensor parallelism (spec §4.2; runtime/tp.h, model/unet_tp.h): the batch group of P ranks is
// the tensor-parallel group; every rank computes the whole image of its images with a 1/P share
// of the split layers' weights and blocking all-reduces (no row bands: any latent size). The
// output needs no gather without split batch; with split batch the two CFG halves are exchanged
// within the pairs {i, i + P}. P = 1 (N = 2 with split batch) is plain CFG data parallelism.
//
// Step policy (patch parallelism): step t is synchronous iff t <= warmup_steps or the mode is
// full_sync; later steps use the other bands' data of the previous step. Step 0 of the first
// image is the planning forward (registers every exchanged tensor, then builds the flat comm
// buffer); later images reuse the plan (step 0 again resets the step counter).
#ifndef DF_RUNTIME_DIST_H
#define DF_RUNTIME_DIST_H

#include "model/pctx.h"
#include "runtime/comm.h"

// ---------------------------------------------------------------------------------------------
// Parameters

typedef enum df_parallelism {
    DF_PAR_PATCH = 0,    // DistriFusion displaced patch parallelism
    DF_PAR_NAIVE_PATCH,  // independent patches, no exchange (baseline)
    DF_PAR_TENSOR,       // tensor parallelism (spec §4.2): heads/channels split, all-reduces
    DF_PAR_COUNT
} df_parallelism;

typedef enum df_sync_mode {
    DF_SYNC_CORRECTED_ASYNC_GN = 0, // stale global GN moments + fresh-minus-stale local correction
    DF_SYNC_SYNC_GN,                // GN all-reduced every step; conv/attn stale
    DF_SYNC_STALE_GN,               // stale GN moments with the own slot fresh
    DF_SYNC_SEPARATE_GN,            // local GN after warm-up
    DF_SYNC_FULL_SYNC,              // every step synchronous ("Sync. PP")
    DF_SYNC_NO_SYNC,                // nothing exchanged after warm-up (frozen halos/KV, local GN)
    DF_SYNC_COUNT
} df_sync_mode;

typedef enum df_split_scheme {
    DF_SPLIT_ROW = 0, // naive patch: bands of rows
    DF_SPLIT_COL,     // naive patch: bands of columns
    DF_SPLIT_ALTERNATE, // rows on even steps, columns on odd steps
    DF_SPLIT_COUNT
} df_split_scheme;

typedef struct df_dist_params {
    df_parallelism parallelism; // default patch
    df_sync_mode sync_mode;     // default corrected_async_gn
    int warmup_steps;           // W: steps 0..W synchronous (default 4)
    int split_batch;            // CFG halves on two rank groups (default 1)
    int n_images;               // CFG batch: 2 (uncond, cond; default) or 1 (no CFG)
    int comm_checkpoint;        // entries per batched async all-gather (default 60)
    df_comm_dtype comm_dtype;   // f32 (default) or f16 for exchanged activations
    int gn_compat;              // 1: distrifuser's GN variance x n_loc/(n_loc-1) (golden match);
                                // 0: exact (a synchronous step equals the single-rank model)
    df_split_scheme split_scheme; // naive patch (default row)
    df_progress progress;       // default test
    df_comm *parent;            // the ranks that run this generation together (borrowed; it
                                // must outlive the df_dist): its size is N, its rank 0 the
                                // root; NULL = MPI_COMM_WORLD (default). Groups of ranks on
                                // different images (--image-groups) pass a split of the world.
} df_dist_params;

df_dist_params df_dist_params_default(void);

const char *df_parallelism_name(df_parallelism p); // "patch", "naive_patch", "tensor"
int df_parallelism_parse(const char *s, df_parallelism *out);
const char *df_sync_mode_name(df_sync_mode m);     // "corrected_async_gn", ...
int df_sync_mode_parse(const char *s, df_sync_mode *out);
const char *df_split_scheme_name(df_split_scheme s); // "row", "col", "alternate"
int df_split_scheme_parse(const char *s, df_split_scheme *out);

// ---------------------------------------------------------------------------------------------
// Topology (pure arithmetic; no MPI)

typedef struct df_topo {
    int N;          // ranks
    int rank;
    int P;          // patches per image (ranks per batch group)
    int n_groups;   // batch groups: 2 with split batch (N > 1), else 1
    int group;      // this rank's batch group
    int patch;      // this rank's patch index (0 = top band)
    int img0, B;    // this rank computes images [img0, img0 + B)
} df_topo;

// Computes the topology of `rank` among N. DF_ERR_ARG (with the reason and the fix) when the
// combination is impossible: split batch with CFG needs an even N (or N = 1).
df_status df_topo_compute(int N, int rank, int split_batch, int n_images, df_topo *out);

// Checks that an H x W latent can be cut into `P` bands for a model with n_down stride-2
// downsamplings (band rows at every level: H must be a multiple of P * 2^n_down). For the naive
// patch column split, pass cols != 0 to check W instead. DF_ERR_SHAPE with a message naming the
// resolution, P, the requirement, and the image sizes that work for this P (vae_scale = pixels
// per latent row, 8 for SD; 0 to omit pixel sizes).
df_status df_topo_check_shape(int P, int n_down, int H, int W, int cols, int vae_scale);

// Latent rows [*r0, *r1) of patch i of P at level l (rows >> l).
void df_topo_band(int H, int P, int i, int level, int *r0, int *r1);

// ---------------------------------------------------------------------------------------------
// The model as the runtime sees it (the UNet adapter, or a synthetic model in tests).

typedef struct df_dist_model {
    void *self;
    int in_channels, out_channels;
    int n_down; // stride-2 downsamplings (SDXL 2, SD1.x 3)
    // Runs the model for B images on the band [ctx->row0, ctx->row1) of an H x W latent.
    //   x:      [B][Hb][W][Cin] the band rows of the B model inputs (Hb = row1 - row0)
    //   images: [B] CFG index of each (0 uncond, 1 cond): which text conditioning applies
    //   ctx:    the patch context (ctx->H_full = H); conv_in (name "conv_in") asks it for its
    //           halo rows, which come from the full input (always fresh)
    //   y:      [B][Hb][W][Cout]
    // For naive patch the runtime passes the sub-image (H, W of the sub-image) with a
    // single-rank context, so the model sees it as a whole image.
    df_status (*forward)(void *self, df_pctx *ctx, const float *x, int B, const int *images,
                         int H, int W, float timestep, float *y);
} df_dist_model;

// ---------------------------------------------------------------------------------------------
// The distributed evaluator

typedef struct df_dist df_dist;

// Per-step statistics of this rank (times in seconds, bytes logical per rank; see comm.h).
typedef struct df_dist_step_stats {
    int step;
    int sync;             // 1 if the step was synchronous
    double t_total;       // whole df_dist_eval
    double t_compute;     // model forward minus time inside the comm manager
    double t_wait;        // blocked: waits on in-flight gathers + blocking exchanges
    double t_progress;    // MPI_Testsome polls and launches
    double t_gather;      // final noise-prediction all-gather
    uint64_t bytes_sent;  // patch exchanges / tensor-parallel all-reduces (not the output gather)
    uint64_t bytes_recv;
    uint64_t bytes_gather; // output gather, received
    int n_collectives;
    int n_waits_blocked;
} df_dist_step_stats;

// Initialises MPI when `launched` (the program was started by mpiexec; decided by the caller,
// e.g. tools/common/tool_env.h), else single-process; see df_mpi_init. Optional: df_dist_create
// uses an MPI the caller initialised, else runs single-process.
df_status df_dist_init(int *argc, char ***argv, int thread_multiple, int launched);
// Exit protocol of the top level (main):
//  - success: destroy the df_dist objects, then df_dist_finalize() on every rank (a rank that
//    exits without it makes mpiexec report the job as failed);
//  - an error from df_dist_create / df_dist_plan / df_dist_unet_create is reported identically
//    on every rank (they agree on failure): print it, df_dist_finalize(), exit non-zero;
//  - an error from df_dist_eval (or anything else mid-run) may be local to one rank while the
//    others wait inside a collective: print it, then df_dist_abort(code), which ends every
//    rank of the job with a non-zero exit (MPI_Abort; without MPI it returns and the caller
//    exits). Never exit() from inside the library.
df_status df_dist_finalize(void);
void df_dist_abort(int code);

// Validates the parameters and builds the topology and communicators (collective over
// p->parent, or the world). Errors are identical on every rank.
df_status df_dist_create(const df_dist_params *p, df_dist **out);
void df_dist_destroy(df_dist *d); // accepts NULL
int df_dist_rank(const df_dist *d);
int df_dist_size(const df_dist *d);
const df_topo *df_dist_topo(const df_dist *d);
const df_dist_params *df_dist_params_get(const df_dist *d);

// Checks the latent shape against the topology and the model depth (call before the loop; the
// same check runs at step 0). DF_ERR_SHAPE with which resolutions work for this N.
df_status df_dist_plan(df_dist *d, const df_dist_model *m, int H, int W);

// One UNet evaluation (see the top of this file). step: 0-based evaluation index within the
// image. Collective: every rank calls it with the same arguments.
df_status df_dist_eval(df_dist *d, const df_dist_model *m, int step, const float *x_full, int H,
                       int W, float timestep, float *eps_full);

// Statistics of the last df_dist_eval, and sums over all steps since create.
void df_dist_last_stats(const df_dist *d, df_dist_step_stats *out);
void df_dist_total_stats(const df_dist *d, df_dist_step_stats *out);
// The planned exchange: number of registered tensors, elements and bytes of one slot (GroupNorm
// moments travel as f64, activations in comm_dtype), and the per-rank volume of the batched
// gathers of one asynchronous step ((P-1) x slot bytes each way; sync_gn adds its blocking GN
// all-reduces, see the step stats). 0 before planning or when nothing is exchanged.
int df_dist_comm_tensors(const df_dist *d);
size_t df_dist_comm_slot_elems(const df_dist *d);
size_t df_dist_comm_slot_bytes(const df_dist *d);
uint64_t df_dist_async_step_bytes(const df_dist *d);
// The communicators (the parent / world duplicate, and this rank's batch group).
df_comm *df_dist_world(df_dist *d);
df_comm *df_dist_batch_comm(df_dist *d);

// Debug trace for tests: records, per step and registered tensor, a 64-bit hash of the bytes
// this rank sent (its own slot after writing it) and of the bytes it read from each slot.
// max_steps steps are kept (steps beyond are not recorded). Call before the first eval.
df_status df_dist_trace_enable(df_dist *d, int max_steps);
// sent[step][entry], read[step][entry][P] (0 = not read); NULL before planning.
const uint64_t *df_dist_trace_sent(const df_dist *d);
const uint64_t *df_dist_trace_read(const df_dist *d);

#endif // DF_RUNTIME_DIST_H
