// Tensor-parallel context (internal to src/runtime): implements df_pctx (model/pctx.h) with
// tp_size > 1 for the ranks of one tensor-parallel group (the batch group of the topology: with
// split batch the uncond and the cond half each form a group of N/2 ranks, otherwise all N ranks
// form one group computing both CFG images). Spec §4.2.
//
// The context covers the whole image (row0 = 0, row1 = H_full = H): conv halos are zero padding
// (image borders), attention K/V and GroupNorm statistics are local (every rank holds the full
// activations). `allreduce` is a blocking MPI_Allreduce(SUM, f32) over the group; the UNet calls
// it once per split layer (model/unet_tp.h).
#ifndef DF_RUNTIME_TP_H
#define DF_RUNTIME_TP_H

#include "model/pctx.h"
#include "runtime/comm.h"

typedef struct df_tp df_tp;

// Counters since the last reset: time blocked in the all-reduces, their number, and logical
// per-rank bytes (ring all-reduce: 2 (P-1)/P x bytes each way).
typedef struct df_tp_stats {
    double t_wait;
    uint64_t bytes_sent, bytes_recv;
    uint64_t floats; // floats all-reduced (the sum of the partial outputs' sizes)
    int n_allreduce;
} df_tp_stats;

// group: the tensor-parallel group (borrowed; tp_rank = its rank, tp_size = its size).
df_status df_tp_create(df_comm *group, df_tp **out);
void df_tp_destroy(df_tp *tp); // accepts NULL
// The context for a whole latent of H rows.
df_pctx *df_tp_ctx(df_tp *tp, int H);
void df_tp_stats_get(const df_tp *tp, df_tp_stats *out);
void df_tp_stats_reset(df_tp *tp);

#endif // DF_RUNTIME_TP_H
