// The trivial single-rank patch context: zero padding, local K/V, local GroupNorm statistics.
#include "model/pctx.h"

static df_status single_conv_halo(df_pctx *ctx, int idx, const char *name, const float *x, int B,
                                  int H, int W, int C, int pad, const float **top,
                                  const float **bot) {
    *top = NULL;
    *bot = NULL;
    return DF_OK;
}

static df_status single_attn_kv(df_pctx *ctx, int idx, const char *name, const float *k,
                                const float *v, int B, int T, int C, const float **k_full,
                                const float **v_full, int *T_full) {
    *k_full = k;
    *v_full = v;
    *T_full = T;
    return DF_OK;
}

static df_status single_gn_stats(df_pctx *ctx, int idx, const char *name, const double *stats,
                                 int B, int G, double count, float *mean, float *var) {
    for (int i = 0; i < B * G; i++) {
        double m = stats[2 * i] / count;
        double v = stats[2 * i + 1] / count - m * m;
        mean[i] = (float)m;
        var[i] = (float)(v > 0 ? v : 0);
    }
    return DF_OK;
}

static df_status single_allreduce(df_pctx *ctx, int idx, const char *name, float *x, size_t n) {
    return DF_OK; // a group of one: the partial is the sum
}

static const df_pctx_ops k_single_ops = {single_conv_halo, single_attn_kv, single_gn_stats,
                                         single_allreduce};

const df_pctx_ops *df_pctx_single_ops(void) {
    return &k_single_ops;
}

void df_pctx_single_init(df_pctx *ctx, int H) {
    ctx->ops = &k_single_ops;
    ctx->row0 = 0;
    ctx->row1 = H;
    ctx->H_full = H;
    ctx->impl = NULL;
    ctx->tp_rank = 0;
    ctx->tp_size = 1;
}
