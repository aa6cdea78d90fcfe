// distrifuse public API: the scaling model of `distrifuse-bench --predict` (runs no
// generation). The bytes plan is exact: one UNet forward at a small size records every conv
// halo, self-attention K/V and GroupNorm statistic the patch runtime exchanges, and the
// runtime's counting rules scale them to any size (per rank and step, sent + received). The
// time adds a compute speed (measured by calibration forwards, or given) and a link model.
#ifndef DF_PREDICT_H
#define DF_PREDICT_H

#include "distrifuse/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct df_predict_model df_predict_model;

// The cluster: ranks, ranks per node (block placement), each node's link and the latency per
// collective, and the runtime's exchange options.
typedef struct df_predict_link {
    int ranks, ranks_per_node;
    double link_gbit, latency_us;
    df_comm_dtype comm_dtype; // DF_COMM_F32 or DF_COMM_F16 (the activations; GN moments f64)
    int halo_neighbour;       // 1: conv halos to the two neighbours (the runtime's default);
                              // 0: inside the all-gather
} df_predict_link;

typedef struct df_prediction {
    df_parallelism parallelism;
    df_sync_mode sync_mode; // patch parallelism only
    int split_batch;
    double step_s, compute_s, comm_s;
    double bytes;   // per rank and step, sent + received
    double speedup; // vs one rank computing both CFG halves
} df_prediction;

// Loads the UNet of `model` (a pipeline folder or its unet/ folder), records the exchanged
// layers at a small latent and, when gflops <= 0, measures the compute speed with forwards of
// growing size (at most ~60 s, with the current thread setting; on CPU seconds per thread). DF_ERR_* naming the problem.
df_status df_predict_create(const char *model, double gflops, df_predict_model **out);
void df_predict_free(df_predict_model *m); // accepts NULL
double df_predict_gflops(const df_predict_model *m); // per rank
// The calibration forward (latent size, wall seconds, CPU seconds per thread: the speed is
// taken from the latter, robust to other load); 0 when gflops was given. cpu_seconds may be NULL.
void df_predict_calibration(const df_predict_model *m, int *latent, double *seconds,
                            double *cpu_seconds);
int df_predict_layers(const df_predict_model *m);       // exchanged layers per forward
int df_predict_default_size(const df_predict_model *m); // pixels: SDXL 1024, SD 1.x 512

// One configuration at width x height pixels: 1 and *out, or 0 when it is not possible at
// link->ranks (band split, tensor-parallel degree, odd ranks with split batch).
int df_predict_config(const df_predict_model *m, int width, int height,
                      const df_predict_link *link, df_parallelism par, df_sync_mode mode,
                      int split_batch, df_prediction *out);
// The slowest link at which patch + corrected_async_gn (split batch on for an even number of
// ranks) still hides its exchange behind compute_s; -1 when the latency alone exceeds it.
double df_predict_min_hiding_gbit(const df_predict_model *m, int width, int height,
                                  const df_predict_link *link, double compute_s);

#ifdef __cplusplus
}
#endif
#endif // DF_PREDICT_H
