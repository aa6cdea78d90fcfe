// DistriFusion patch context (internal to src/runtime): implements df_pctx (model/pctx.h) for
// patch `patch` of P on a batch-group communicator, on top of the comm manager (comm.h).
//
// Per layer (spec §2):
//   conv_in (name "conv_in"): halo rows cut from the full model input (always fresh, no comm);
//   other k x k convs: exchanged entry [2][B][pad][W][C] = (top pad rows, bottom pad rows) of the
//     conv input; the halo above comes from patch i-1's bottom rows, below from i+1's top rows;
//     by default a halo entry of the comm manager (point to point to the two neighbours only),
//     with prm.halo_allgather a slot of the all-gather as before;
//   self-attention: exchanged entry [2][B][Tmax][C] = (K, V) of the local tokens, padded to the
//     largest band (K at 0, V at B*Tmax*C); K/V of the whole image = the P bands in patch
//     order, own band always fresh;
//   GroupNorm: per mode (dist.h); corrected/stale modes exchange [B][G][2] f64 moments
//     (mean, mean of squares); the other modes all-reduce the sums when synchronous.
// Synchronous steps exchange each entry with a blocking all-gather; asynchronous steps read the
// slots (one step old), then write the own slot and enqueue it (nothing in no_sync).
#ifndef DF_RUNTIME_PATCH_H
#define DF_RUNTIME_PATCH_H

#include "runtime/dist.h"

typedef struct df_patch df_patch;

// batch: the patch group (size P >= 1; borrowed); this rank's band index = its rank in it.
// deep_rows [P]: rows of every band at the deepest level (runtime/bands.h; copied); band j
// covers latent rows [sum_{i<j} deep_rows[i] << n_down, ...).
df_status df_patch_create(df_comm *batch, const df_dist_params *p, const int *deep_rows,
                          int n_down, df_patch **out);
void df_patch_destroy(df_patch *pp); // accepts NULL

// Starts one forward. x_full: [B][H][W][Cin] full inputs (for conv_in halos; borrowed until
// df_patch_end). The first forward after create is the planning forward (always synchronous).
df_status df_patch_begin(df_patch *pp, int step, const float *x_full, int B, int H, int W,
                         int Cin);
df_pctx *df_patch_ctx(df_patch *pp);
// Ends the forward: launches the queued tail (async) or commits the plan (planning forward);
// checks that the layer sequence was complete.
df_status df_patch_end(df_patch *pp);
// Called when a forward failed: drops the partial state so the object can be destroyed.
void df_patch_abort_step(df_patch *pp);
int df_patch_step_sync(const df_patch *pp); // 1 if the current/last step is synchronous
df_xchg *df_patch_xchg(df_patch *pp);

// Trace (see df_dist_trace_enable): sent [steps][entries][2] (part for the band above, part for
// the band below: the halo's top / bottom rows; other entries the whole slot twice), read
// [steps][entries][P] (the bytes read from patch j: a halo's part only).
df_status df_patch_trace_enable(df_patch *pp, int max_steps);
const uint64_t *df_patch_trace_sent(const df_patch *pp);
const uint64_t *df_patch_trace_read(const df_patch *pp);

#endif // DF_RUNTIME_PATCH_H
