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
// Bands (runtime/bands.h): the deepest feature map's D = H >> n_down rows are dealt to the P
// patches (at most one row of difference, or by --band-weights); patch i covers latent rows
// [start_i, start_{i+1}) with start_i = (deep rows of patches < i) << n_down, and at level l
// those rows >> l. Any N works as long as every band has >= 1 row at the deepest level (H a
// multiple of 2^n_down, D >= P). With CFG and split batch an odd N runs as no split batch.
// Uneven bands: GroupNorm moments are combined weighted by band size; the attention K/V entries
// are padded to the largest band (one all-gather), the output all-gather is variable-size.
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
//
// Conv halos (issue 8): by default each 3x3 conv's halo rows go point to point to the two
// neighbour bands only (MPI_Isend/Irecv posted right after the layer, like the batched
// all-gathers; consumed one step later in asynchronous steps, immediately in synchronous
// ones); K/V and GroupNorm moments stay in the all-gather. halo_allgather = 1 keeps the halos
// inside the all-gather (the earlier path, (P-1)x the halo bytes); results are bit-identical.
//
// band_weights_auto: step 0 (the plan's first forward, always synchronous) is timed per rank
// (model compute time, without the exchange waits and the output gather); right after it the
// bands are re-planned once from the measured speeds (rows / time; a patch index's time is the
// slowest of its CFG groups). When the plan changes, the exchange plan is rebuilt and step 1
// runs SYNCHRONOUSLY as the new planning forward: the stale buffers of the old geometry are
// dropped, not resampled. For W >= 1 that step is a warm-up step anyway (no extra synchronous
// step); for W = 0 it is one extra synchronous step. Only step 0 thus runs on the equal bands,
// and the first asynchronous step reads fresh-geometry data of the step before. Later images
// keep the plan. Step 0 also pays the first touch of the buffers (~10% slower than a steady
// step on the demo model at 2048x2048), on every rank alike, so the speed ratio holds
// (docs/design.md, "Speed-weighted bands").
#ifndef DF_RUNTIME_DIST_H
#define DF_RUNTIME_DIST_H

#include "distrifuse/engine.h"

#include "model/pctx.h"
#include "runtime/comm.h"

// ---------------------------------------------------------------------------------------------
// Parameters

// df_parallelism, df_sync_mode, df_split_scheme, DF_MAX_BAND_WEIGHTS and their names:
// distrifuse/engine.h (public)

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
    // bands (issue 9) and halos (issue 8)
    int n_band_weights;         // 0: equal bands; else one weight per patch of a CFG group
    double band_weights[DF_MAX_BAND_WEIGHTS]; // relative speeds (> 0), [n_band_weights]
    int band_weights_auto;      // 1: time the warm-up and re-plan (see the top of the file)
    int halo_allgather;         // 1: conv halos inside the all-gather (default 0: neighbours)
} df_dist_params;

// Parses "w0,w1,..." (numbers > 0) or "auto" into p. Returns 1 on success, else 0 with a
// message in err.
int df_band_weights_parse(const char *s, df_dist_params *p, char *err, size_t cap);

df_dist_params df_dist_params_default(void);

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
    int split_fallback; // 1: CFG + split batch asked with an odd N, running as no split batch
} df_topo;

// Computes the topology of `rank` among N. Split batch with CFG and an odd N falls back to no
// split batch (split_fallback = 1).
df_status df_topo_compute(int N, int rank, int split_batch, int n_images, df_topo *out);

// Checks that an H x W latent can be cut into `P` bands for a model with n_down stride-2
// downsamplings: H a multiple of 2^n_down and H >> n_down >= P (every band >= 1 row at the
// deepest level). For the naive patch column split, pass cols != 0 to check W instead.
// DF_ERR_SHAPE with a message naming the resolution, P, the requirement, and what works
// (vae_scale = pixels per latent row, 8 for SD; 0 to omit pixel sizes).
df_status df_topo_check_shape(int P, int n_down, int H, int W, int cols, int vae_scale);
// The same for N ranks as a whole (topology included): the message of a too-large N names the
// largest N for this size.
df_status df_topo_check_ranks(int N, int split_batch, int n_images, int n_down, int H, int W,
                              int cols, int vae_scale);

// Latent rows [*r0, *r1) of patch i of P at level l with equal bands (H a multiple of
// P << level; the band rule of bands.h in that case).
void df_topo_band(int H, int P, int i, int level, int *r0, int *r1);
// Deepest-level rows of the P bands of an H-row latent (bands.h rule; weights [P] or NULL).
df_status df_topo_bands(int H, int n_down, int P, const double *weights, int *deep_rows);

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

// Per-step statistics of this rank: df_dist_step_stats (distrifuse/engine.h).

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
// exchange of one asynchronous step, each way: (P-1) x the all-gathered slot bytes plus this
// rank's neighbour halos (sync_gn adds its blocking GN all-reduces, see the step stats). The
// slot counts every registered tensor (halos too: distrifuser's slot). 0 before planning or
// when nothing is exchanged.
int df_dist_comm_tensors(const df_dist *d);
size_t df_dist_comm_slot_elems(const df_dist *d);
size_t df_dist_comm_slot_bytes(const df_dist *d);
uint64_t df_dist_async_step_bytes(const df_dist *d);
// The band plan: bands per image (0 without bands: one rank per image, tensor parallelism),
// and rows per band at the deepest level (deep_rows [P], may be NULL). For naive patch the
// bands of the last step (rows or columns).
int df_dist_bands(const df_dist *d, int *deep_rows);
// One line describing the band plan, rows per rank per level ("rows per band: level 0 (64):
// 22/21/21, level 1 ..."); returns 1 if the bands are uneven (else 0; buf still filled).
int df_dist_band_plan_str(const df_dist *d, char *buf, size_t cap);
// The communicators (the parent / world duplicate, and this rank's batch group).
df_comm *df_dist_world(df_dist *d);
df_comm *df_dist_batch_comm(df_dist *d);

// Debug trace for tests: records, per step and registered tensor, a 64-bit hash of the bytes
// this rank sent (its own slot after writing it) and of the bytes it read from each slot.
// max_steps steps are kept (steps beyond are not recorded). Call before the first eval.
df_status df_dist_trace_enable(df_dist *d, int max_steps);
// sent[step][entry][2] (the part for the band above, the part for the band below: a conv
// halo's top / bottom rows, any other entry its whole slot twice), read[step][entry][P] (the
// bytes read from patch j: of a halo only the part it needs; 0 = not read); NULL before
// planning.
const uint64_t *df_dist_trace_sent(const df_dist *d);
const uint64_t *df_dist_trace_read(const df_dist *d);

#endif // DF_RUNTIME_DIST_H
