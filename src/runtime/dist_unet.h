// Binds a df_unet (model/unet.h) to the distributed runtime as a df_dist_model.
//
//   df_dist_unet *du;
//   df_dist_unet_create(dist, unet, H, W, enc, T_text, text_embeds, time_ids, &du);
//   for (step...) df_dist_eval(dist, df_dist_unet_model(du), step, x_full, H, W, t, eps_full);
//   df_dist_unet_destroy(du);
//
// The conditioning of every CFG image is given once ([n_img] rows, 0 = uncond, 1 = cond); each
// rank keeps the rows of the images it computes (both without split batch) and sets them on the
// UNet (attn2 K/V cached by the UNet). The UNet arena is planned for this rank's band (its rows,
// re-planned when --band-weights auto moves them; the sub-image for naive patch, re-planned when
// the alternate scheme switches between row and column sub-images).
#ifndef DF_RUNTIME_DIST_UNET_H
#define DF_RUNTIME_DIST_UNET_H

#include "model/unet.h"
#include "runtime/dist.h"

typedef struct df_dist_unet df_dist_unet;

// enc: [n_img][T_text][cross_attention_dim]; text_embeds: [n_img][text_embeds_dim] and
// time_ids: [n_img][n_time_ids] (SDXL; NULL otherwise). All copied. The UNet is borrowed and
// must outlive the binding. Validates the latent shape against the topology (DF_ERR_SHAPE) and,
// for tensor parallelism, the degree against the UNet (df_unet_tp_check, DF_ERR_ARG).
df_status df_dist_unet_create(df_dist *d, df_unet *u, int H, int W, const float *enc,
                              int T_text, const float *text_embeds, const float *time_ids,
                              df_dist_unet **out);
// New conditioning (a new prompt) for the next image.
df_status df_dist_unet_set_text(df_dist_unet *du, const float *enc, const float *text_embeds,
                                const float *time_ids);
const df_dist_model *df_dist_unet_model(df_dist_unet *du);
void df_dist_unet_destroy(df_dist_unet *du); // accepts NULL

#endif // DF_RUNTIME_DIST_UNET_H
