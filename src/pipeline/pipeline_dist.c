// The distributed denoiser: df_i_generate's UNet evaluation through df_dist_eval (see
// pipeline_dist.h).
#include "pipeline/pipeline_dist.h"

#include "pipeline/pipeline_impl.h"
#include "runtime/dist_unet.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct dist_state {
    df_dist_params dp;
    df_dist *d;
    df_dist_unet *du;
    int h, w;
    df_dist_step_stats total;
    int comm_tensors;
} dist_state;

static df_status dist_begin(void *self, df_unet *unet, const df_cond *c, int h, int w) {
    dist_state *s = self;
    s->dp.n_images = c->n_img;
    s->h = h;
    s->w = w;
    DF_TRY(df_dist_create(&s->dp, &s->d));
    return df_dist_unet_create(s->d, unet, h, w, c->enc, c->T, c->text_embeds, c->time_ids,
                               &s->du);
}

static df_status dist_eval(void *self, int call, const float *x, float t, float *eps) {
    dist_state *s = self;
    return df_dist_eval(s->d, df_dist_unet_model(s->du), call, x, s->h, s->w, t, eps);
}

static void dist_end(void *self) {
    dist_state *s = self;
    if (s->d) {
        df_dist_total_stats(s->d, &s->total);
        s->comm_tensors = df_dist_comm_tensors(s->d);
    }
    df_dist_unet_destroy(s->du);
    df_dist_destroy(s->d);
    s->du = NULL;
    s->d = NULL;
}

df_status df_generate_dist(df_model *m, const df_gen_params *p, const df_dist_params *dp,
                           df_image *image, df_gen_info *info, df_dist_step_stats *stats,
                           int *comm_tensors) {
    DF_FAIL_IF(!m || !p || !dp, DF_ERR_ARG, "NULL argument");
    df_gen_params q = *p;
    if (q.seed < 0 && df_mpi_world_size() > 1) {
        // one random seed for every rank: rank 0 draws it
        df_comm *world = NULL;
        DF_TRY(df_comm_world(&world));
        int64_t seed = 0;
        if (df_mpi_world_rank() == 0) {
            FILE *f = fopen("/dev/urandom", "rb");
            uint32_t v = 0;
            if (f) {
                if (fread(&v, sizeof v, 1, f) != 1) v = 0;
                fclose(f);
            }
            seed = v ? v : (int64_t)time(NULL) & 0xffffffff;
        }
        df_status bs = df_comm_bcast(world, &seed, sizeof seed, 0);
        df_comm_destroy(world);
        DF_TRY(bs);
        q.seed = seed;
    }
    p = &q;
    dist_state s;
    memset(&s, 0, sizeof s);
    s.dp = *dp;
    df_denoiser den = {.self = &s, .root = df_mpi_world_rank() == 0, .begin = dist_begin,
                       .eval = dist_eval, .end = dist_end};
    df_status st = df_i_generate(m, p, &den, image, info);
    if (s.d || s.du) dist_end(&s); // begin failed half-way (end is only called after begin)
    if (stats) *stats = s.total;
    if (comm_tensors) *comm_tensors = s.comm_tensors;
    return st;
}

df_status df_generate_dist_check(const df_model *m, const df_gen_params *p,
                                 const df_dist_params *dp, int N) {
    DF_FAIL_IF(!m || !p || !dp, DF_ERR_ARG, "NULL argument");
    DF_TRY(df_gen_params_validate(m, p));
    int W, H;
    float g;
    df_model_defaults(m, &W, &H, &g, NULL);
    if (p->width > 0) W = p->width;
    if (p->height > 0) H = p->height;
    if (p->cfg_scale >= 0) g = p->cfg_scale;
    const int n_img = g > 1.0f ? 2 : 1;
    df_topo topo;
    DF_TRY(df_topo_compute(N, 0, dp->split_batch, n_img, &topo));
    const int f = df_vae_scale_factor(m->vae);
    const int n_down = df_unet_get_config(m->unet)->n_levels - 1;
    const int rows = dp->parallelism == DF_PAR_PATCH || dp->split_scheme != DF_SPLIT_COL;
    const int cols = dp->parallelism == DF_PAR_NAIVE_PATCH && dp->split_scheme != DF_SPLIT_ROW;
    if (rows) DF_TRY(df_topo_check_shape(topo.P, n_down, H / f, W / f, 0, f));
    if (cols) DF_TRY(df_topo_check_shape(topo.P, n_down, H / f, W / f, 1, f));
    return DF_OK;
}
