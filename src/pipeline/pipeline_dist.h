// Text-to-image under the MPI DistriFusion runtime (src/runtime/dist.h): the same pipeline as
// df_generate, with the per-step UNet evaluation done by df_dist_eval over all ranks.
//
// Every rank loads the model, runs the text encoders, the scheduler and the loop with identical
// inputs (same seed / init latent); only the UNet evaluation is distributed. Rank 0 alone calls
// the progress / step callbacks, writes save_latent and decodes the image (other ranks return
// an empty image). Collective: every rank of MPI_COMM_WORLD calls it with the same arguments.
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

// Checks, before any collective, that N ranks can run this generation: the rank topology
// (split batch needs an even N with CFG) and that the latent splits into the patch bands at the
// deepest UNet level. Pure arithmetic, identical on every rank. DF_ERR_ARG / DF_ERR_SHAPE with
// the reason and which sizes / rank counts work.
df_status df_generate_dist_check(const df_model *m, const df_gen_params *p,
                                 const df_dist_params *dp, int N);

#endif // DF_PIPELINE_PIPELINE_DIST_H
