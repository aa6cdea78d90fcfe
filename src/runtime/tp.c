// Tensor-parallel context: see tp.h.
#include "runtime/tp.h"

#include <stdlib.h>
#include <string.h>

struct df_tp {
    df_pctx ctx;
    df_pctx_ops ops; // the single-rank answers + the group all-reduce
    df_comm *group;
    df_tp_stats st;
};

#define CHUNK ((size_t)1 << 30) // floats per MPI_Allreduce (int counts)

static df_status tp_allreduce(df_pctx *ctx, int idx, const char *name, float *x, size_t n) {
    df_tp *tp = ctx->impl;
    const int P = df_comm_size(tp->group);
    const double t0 = df_time_s();
    for (size_t o = 0; o < n; o += CHUNK) {
        const size_t m = n - o < CHUNK ? n - o : CHUNK;
        df_status st = df_comm_allreduce_sum_f32(tp->group, x + o, m);
        if (st != DF_OK)
            return DF_ERROR(st, "tensor-parallel all-reduce of %s (%zu floats): %s",
                            name ? name : "?", n, df_last_error());
    }
    tp->st.t_wait += df_time_s() - t0;
    const uint64_t b = (uint64_t)n * sizeof(float) * 2 * (uint64_t)(P - 1) / (uint64_t)P;
    tp->st.bytes_sent += b;
    tp->st.bytes_recv += b;
    tp->st.floats += n;
    tp->st.n_allreduce++;
    return DF_OK;
}

df_status df_tp_create(df_comm *group, df_tp **out) {
    *out = NULL;
    DF_FAIL_IF(!group, DF_ERR_ARG, "no tensor-parallel group");
    df_tp *tp = calloc(1, sizeof *tp);
    DF_FAIL_IF(!tp, DF_ERR_NOMEM, "out of memory");
    tp->group = group;
    tp->ops = *df_pctx_single_ops();
    tp->ops.allreduce = tp_allreduce;
    tp->ctx.ops = &tp->ops;
    tp->ctx.impl = tp;
    tp->ctx.tp_rank = df_comm_rank(group);
    tp->ctx.tp_size = df_comm_size(group);
    *out = tp;
    return DF_OK;
}

void df_tp_destroy(df_tp *tp) {
    free(tp);
}

df_pctx *df_tp_ctx(df_tp *tp, int H) {
    tp->ctx.row0 = 0;
    tp->ctx.row1 = H;
    tp->ctx.H_full = H;
    return &tp->ctx;
}

void df_tp_stats_get(const df_tp *tp, df_tp_stats *out) { *out = tp->st; }
void df_tp_stats_reset(df_tp *tp) { memset(&tp->st, 0, sizeof tp->st); }
