// UNet binding for the distributed runtime; see dist_unet.h.
#include "runtime/dist_unet.h"

#include "model/unet_tp.h"

#include <stdlib.h>
#include <string.h>

struct df_dist_unet {
    df_dist_model model;
    df_unet *u;
    int B, img0, n_img, T_text;
    int p_B, p_H, p_W, p_band; // current UNet plan (0 = none)
    float *enc, *pooled, *tids; // this rank's images: [B][T][D], [B][Dt], [B][n_ids]
    int d_ctx, d_pooled, n_ids;
    int text_dirty;
};

static df_status copy_rows(float **dst, const float *src, int img0, int B, size_t row) {
    df_free(*dst);
    *dst = NULL;
    if (!src || row == 0) return DF_OK;
    *dst = df_malloc((size_t)B * row * sizeof(float));
    DF_FAIL_IF(!*dst, DF_ERR_NOMEM, "out of memory");
    memcpy(*dst, src + (size_t)img0 * row, (size_t)B * row * sizeof(float));
    return DF_OK;
}

df_status df_dist_unet_set_text(df_dist_unet *du, const float *enc, const float *text_embeds,
                                const float *time_ids) {
    DF_FAIL_IF(!enc, DF_ERR_ARG, "no text embeddings");
    DF_TRY(copy_rows(&du->enc, enc, du->img0, du->B, (size_t)du->T_text * du->d_ctx));
    if (du->d_pooled > 0) {
        DF_FAIL_IF(!text_embeds || !time_ids, DF_ERR_ARG,
                   "this UNet (addition embedding text_time) needs text_embeds and time_ids");
        DF_TRY(copy_rows(&du->pooled, text_embeds, du->img0, du->B, (size_t)du->d_pooled));
        DF_TRY(copy_rows(&du->tids, time_ids, du->img0, du->B, (size_t)du->n_ids));
    }
    du->text_dirty = 1;
    return DF_OK;
}

static df_status unet_forward(void *self, df_pctx *ctx, const float *x, int B, const int *images,
                              int H, int W, float timestep, float *y) {
    df_dist_unet *du = self;
    int band = ctx->row1 - ctx->row0;
    DF_FAIL_IF(B != du->B, DF_ERR_INTERNAL, "UNet binding made for %d images, asked for %d", du->B,
               B);
    if (du->p_B != B || du->p_H != H || du->p_W != W || du->p_band != band) {
        DF_TRY(df_unet_plan(du->u, B, H, W, band));
        du->p_B = B, du->p_H = H, du->p_W = W, du->p_band = band;
        du->text_dirty = 1;
    }
    if (du->text_dirty) {
        DF_TRY(df_unet_set_text(du->u, B, du->enc, du->T_text, du->pooled, du->tids));
        du->text_dirty = 0;
    }
    float t[2] = {timestep, timestep};
    (void)images;
    return df_unet_forward(du->u, ctx, x, t, y);
}

df_status df_dist_unet_create(df_dist *d, df_unet *u, int H, int W, const float *enc,
                              int T_text, const float *text_embeds, const float *time_ids,
                              df_dist_unet **out) {
    *out = NULL;
    DF_FAIL_IF(!u || T_text < 1, DF_ERR_ARG, "bad UNet binding arguments");
    const df_unet_config *cfg = df_unet_get_config(u);
    df_dist_unet *du = calloc(1, sizeof *du);
    DF_FAIL_IF(!du, DF_ERR_NOMEM, "out of memory");
    const df_topo *tp = df_dist_topo(d);
    du->u = u;
    du->B = tp->B;
    du->img0 = tp->img0;
    du->n_img = df_dist_params_get(d)->n_images;
    du->T_text = T_text;
    du->d_ctx = cfg->cross_attention_dim;
    du->d_pooled = cfg->addition_embed ? cfg->text_embeds_dim : 0;
    du->n_ids = cfg->addition_embed ? cfg->n_time_ids : 0;
    du->model.self = du;
    du->model.in_channels = cfg->in_channels;
    du->model.out_channels = cfg->out_channels;
    du->model.n_down = cfg->n_levels - 1;
    du->model.forward = unet_forward;
    df_status st = DF_OK;
    // tensor parallelism: the degree (ranks per group) must split the GroupNorms and channels;
    // the same verdict on every rank (same config), so every rank fails cleanly here
    if (df_dist_params_get(d)->parallelism == DF_PAR_TENSOR && tp->P > 1)
        st = df_unet_tp_check(cfg, tp->P);
    if (st == DF_OK) st = df_dist_unet_set_text(du, enc, text_embeds, time_ids);
    if (st == DF_OK) st = df_dist_plan(d, &du->model, H, W);
    if (st != DF_OK) {
        df_dist_unet_destroy(du);
        return st;
    }
    *out = du;
    return DF_OK;
}

const df_dist_model *df_dist_unet_model(df_dist_unet *du) { return &du->model; }

void df_dist_unet_destroy(df_dist_unet *du) {
    if (!du) return;
    df_free(du->enc);
    df_free(du->pooled);
    df_free(du->tids);
    free(du);
}
