// Text-to-image under the MPI DistriFusion runtime (src/runtime/dist.h): the same pipeline as
// df_generate, with the per-step UNet evaluation done by df_dist_eval over all ranks.
//
// Every rank loads the model, runs the text encoders, the scheduler and the loop with identical
// inputs (same seed / init latent); only the UNet evaluation is distributed. Rank 0 alone calls
// the progress / step callbacks, writes save_latent and decodes the image (other ranks return
// an empty image). Collective: every rank of dp->parent (NULL: MPI_COMM_WORLD) calls it with
// the same arguments; "rank 0" is rank 0 of that communicator.
#ifndef DF_PIPELINE_PIPELINE_DIST_H
#define DF_PIPELINE_PIPELINE_DIST_H

#include "distrifuse/pipeline.h"

#include "runtime/dist.h"

// dp: parallelism / sync mode / warm-up / split batch / checkpoint / comm dtype (n_images is
// set from the guidance: 2 with CFG, 1 without). stats (may be NULL): this rank's totals over
// the steps; comm_tensors (may be NULL): the number of exchanged tensors registered.
// Errors of any rank are reported on every rank (DF_ERR_* "another rank failed") where the
// runtime can agree on them; a rank failing outside the collective calls leaves the others
// waiting, so the caller aborts the job on failure (df_dist_abort).
df_status df_generate_dist(df_model *m, const df_gen_params *p, const df_dist_params *dp,
                           df_image *image, df_gen_info *info, df_dist_step_stats *stats,
                           int *comm_tensors);

// The band plan (rows per rank per level, runtime/dist.h df_dist_band_plan_str) of the last
// df_generate_dist of this process; returns 1 if its bands were uneven.
int df_generate_dist_band_plan(char *buf, size_t cap);

// Checks, before any collective, that N ranks can run this generation: the rank topology
// (split batch with CFG and an odd N runs as no split batch), that every patch band gets at
// least one row at the deepest UNet level (else the message names the largest N), and the
// number of --band-weights. Pure arithmetic, identical on every rank. DF_ERR_ARG /
// DF_ERR_SHAPE with the reason and which sizes / rank counts work.
df_status df_generate_dist_check(const df_model *m, const df_gen_params *p,
                                 const df_dist_params *dp, int N);

// ---------------------------------------------------------------------------------------------
// Sessions: repeated generations (benchmarks) on one runtime.
//
// df_generate_dist builds the runtime (communicators, the planning forward, the flat exchange
// buffer, the UNet band arena) for every image. A session keeps them across df_generate_session
// calls with the same model, size and CFG batch (a change rebuilds them), so only its first
// generation pays for the planning; later ones run exactly what a long-running service would.
// In a single process (no mpiexec, or 1 rank) a session runs the plain single-rank UNet
// forward, as df_generate does (same result). Results equal df_generate_dist /
// df_generate for the same parameters.

// Called on every rank after each UNet evaluation: step = 0-based model call, eval_s = wall
// time of the evaluation (distributed: df_dist_eval including its exchanges and the output
// gather), st = this rank's statistics of that step (df_dist_last_stats; single process:
// sync = 1, t_total = t_compute = eval_s, everything else 0). Valid during the call only.
typedef void (*df_dist_step_fn)(void *user, int step, double eval_s,
                                const df_dist_step_stats *st);

typedef struct df_dist_session df_dist_session;

// No communication happens here (the runtime is created by the first generation). step_fn may
// be NULL.
df_status df_dist_session_create(const df_dist_params *dp, df_dist_step_fn step_fn, void *user,
                                 df_dist_session **out);
// Collective when a runtime exists (frees communicators). Accepts NULL.
void df_dist_session_destroy(df_dist_session *s);
// The current band plan as df_generate_dist_band_plan (0 and "" without a runtime).
int df_dist_session_band_plan(const df_dist_session *s, char *buf, size_t cap);
// Exchanged tensors of the current plan (0 before the first generation or in one process).
int df_dist_session_comm_tensors(const df_dist_session *s);
// One generation, as df_generate_dist (collective; rank 0 alone calls the progress / latent
// callbacks, writes save_latent and decodes). After a failure the session's runtime may be
// mid-step on some ranks: abort the job (df_dist_abort) or destroy the session.
df_status df_generate_session(df_dist_session *s, df_model *m, const df_gen_params *p,
                              df_image *image, df_gen_info *info);

#endif // DF_PIPELINE_PIPELINE_DIST_H
