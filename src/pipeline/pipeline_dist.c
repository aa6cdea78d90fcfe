// The distributed denoiser: df_i_generate's UNet evaluation through df_dist_eval (see
// pipeline_dist.h).
#include "pipeline/pipeline_dist.h"

#include "pipeline/pipeline_impl.h"
#include "model/unet_tp.h"
#include "runtime/dist_unet.h"
#include "runtime/vae_dist.h"

#include <stdio.h>
#include <stdlib.h>
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

// The band plan of the last distributed generation of this process (df_generate_dist_band_plan).
static char g_band_plan[1024];
static int g_band_uneven;

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
        g_band_uneven = df_dist_band_plan_str(s->d, g_band_plan, sizeof g_band_plan);
    }
    df_dist_unet_destroy(s->du);
    df_dist_destroy(s->d);
    s->du = NULL;
    s->d = NULL;
}

// The parallel VAE decode over all ranks of the generation (both CFG groups): `parent` is
// df_dist_params.parent (NULL = the world).
static df_status par_decode_on(df_comm *parent, df_vae *vae, const float *z, int h, int w,
                               const df_vae_decode_opts *opts, float *img, df_timings *timings,
                               int *tiled) {
    df_vae_dist_times t;
    df_status st = df_vae_decode_dist(vae, parent, z, h, w, opts, img, &t);
    timings->vae_halo_s = t.halo_s;
    timings->vae_gather_s = t.gather_s;
    *tiled = t.tiled;
    return st;
}

static df_status par_decode(void *self, df_vae *vae, const float *z, int h, int w,
                            const df_vae_decode_opts *opts, float *img, df_timings *timings,
                            int *tiled) {
    const dist_state *s = self;
    return par_decode_on(s->dp.parent, vae, z, h, w, opts, img, timings, tiled);
}

// Rank and size within the ranks that run the generation (dp->parent, else the world).
static int par_rank(const df_dist_params *dp) {
    return dp->parent ? df_comm_rank(dp->parent) : df_mpi_world_rank();
}
static int par_size(const df_dist_params *dp) {
    return dp->parent ? df_comm_size(dp->parent) : df_mpi_world_size();
}

// A random seed (seed < 0) must be the same on every rank: the root draws it and broadcasts it.
static df_status shared_seed(df_gen_params *q, const df_dist_params *dp) {
    if (q->seed >= 0 || par_size(dp) <= 1) return DF_OK;
    df_comm *world = NULL;
    if (dp->parent) DF_TRY(df_comm_split(dp->parent, 0, df_comm_rank(dp->parent), &world));
    else DF_TRY(df_comm_world(&world));
    int64_t seed = 0;
    if (par_rank(dp) == 0) {
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
    q->seed = seed;
    return DF_OK;
}

df_status df_generate_dist(df_model *m, const df_gen_params *p, const df_dist_params *dp,
                           df_image *image, df_gen_info *info, df_dist_step_stats *stats,
                           int *comm_tensors) {
    DF_FAIL_IF(!m || !p || !dp, DF_ERR_ARG, "NULL argument");
    df_gen_params q = *p;
    DF_TRY(shared_seed(&q, dp));
    p = &q;
    dist_state s;
    memset(&s, 0, sizeof s);
    s.dp = *dp;
    df_denoiser den = {.self = &s, .root = par_rank(dp) == 0, .begin = dist_begin,
                       .eval = dist_eval, .end = dist_end,
                       .decode = par_size(dp) > 1 ? par_decode : NULL};
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
    if ((dp->n_band_weights > 0 || dp->band_weights_auto) && dp->parallelism == DF_PAR_TENSOR)
        return DF_ERROR(DF_ERR_ARG, "--band-weights needs row bands: --parallelism patch or "
                                    "naive_patch (tensor parallelism has no bands)");
    if (dp->band_weights_auto && dp->parallelism != DF_PAR_PATCH)
        return DF_ERROR(DF_ERR_ARG, "--band-weights auto times the synchronous warm-up steps, "
                                    "so it needs --parallelism patch");
    if (dp->parallelism == DF_PAR_TENSOR) // whole image on every rank: any size; degree check
        return df_unet_tp_check(df_unet_get_config(m->unet), topo.P);
    // uneven bands (runtime/bands.h): every band needs >= 1 row at the deepest level
    const int rows = dp->parallelism == DF_PAR_PATCH || dp->split_scheme != DF_SPLIT_COL;
    const int cols = dp->parallelism == DF_PAR_NAIVE_PATCH && dp->split_scheme != DF_SPLIT_ROW;
    const int sb = dp->split_batch;
    if (rows) DF_TRY(df_topo_check_ranks(N, sb, n_img, n_down, H / f, W / f, 0, f));
    if (cols) DF_TRY(df_topo_check_ranks(N, sb, n_img, n_down, H / f, W / f, 1, f));
    if (dp->n_band_weights > 0 && dp->n_band_weights != topo.P)
        return DF_ERROR(DF_ERR_ARG,
                        "--band-weights has %d weights, but %d ranks give %d bands per image "
                        "(one weight per rank of a CFG group)",
                        dp->n_band_weights, N, topo.P);
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Sessions: repeated generations on one runtime (see pipeline_dist.h)

struct df_dist_session {
    int single;                      // 1 process: plain UNet forward, no runtime
    df_denoiser single_den;          // single path
    df_denoiser_single_state single_state;
    dist_state ds;                   // distributed path (ds.d / ds.du kept across generations)
    const df_unet *unet;             // the UNet the binding was made for
    df_dist_step_fn step_fn;
    void *user;
};

df_status df_dist_session_create(const df_dist_params *dp, df_dist_step_fn step_fn, void *user,
                                 df_dist_session **out) {
    DF_FAIL_IF(!dp || !out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    df_dist_session *s = calloc(1, sizeof *s);
    DF_FAIL_IF(!s, DF_ERR_NOMEM, "out of memory (session)");
    s->single = par_size(dp) <= 1;
    s->ds.dp = *dp;
    s->step_fn = step_fn;
    s->user = user;
    df_i_denoiser_single(&s->single_den, &s->single_state);
    *out = s;
    return DF_OK;
}

void df_dist_session_destroy(df_dist_session *s) {
    if (!s) return;
    if (s->ds.d || s->ds.du) dist_end(&s->ds);
    free(s);
}

int df_generate_dist_band_plan(char *buf, size_t cap) {
    if (cap) snprintf(buf, cap, "%s", g_band_plan);
    return g_band_uneven;
}

int df_dist_session_band_plan(const df_dist_session *s, char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    if (!s || !s->ds.d) return 0;
    return df_dist_band_plan_str(s->ds.d, buf, cap);
}

int df_dist_session_comm_tensors(const df_dist_session *s) {
    if (!s || !s->ds.d) return 0;
    return df_dist_comm_tensors(s->ds.d);
}

static df_status session_begin(void *self, df_unet *unet, const df_cond *c, int h, int w) {
    df_dist_session *s = self;
    if (s->single) return s->single_den.begin(s->single_den.self, unet, c, h, w);
    dist_state *d = &s->ds;
    if (d->d && d->du && s->unet == unet && d->h == h && d->w == w &&
        d->dp.n_images == c->n_img)
        return df_dist_unet_set_text(d->du, c->enc, c->text_embeds, c->time_ids); // reuse
    if (d->d || d->du) dist_end(d); // another model / size / batch: a new runtime
    s->unet = unet;
    return dist_begin(d, unet, c, h, w);
}

static df_status session_eval(void *self, int call, const float *x, float t, float *eps) {
    df_dist_session *s = self;
    const double t0 = df_time_s();
    df_status st = s->single ? s->single_den.eval(s->single_den.self, call, x, t, eps)
                             : dist_eval(&s->ds, call, x, t, eps);
    const double dt = df_time_s() - t0;
    if (st == DF_OK && s->step_fn) {
        df_dist_step_stats ss;
        if (s->single) {
            memset(&ss, 0, sizeof ss);
            ss.step = call;
            ss.sync = 1;
            ss.t_total = ss.t_compute = dt;
        } else {
            df_dist_last_stats(s->ds.d, &ss);
        }
        s->step_fn(s->user, call, dt, &ss);
    }
    return st;
}

static df_status session_decode(void *self, df_vae *vae, const float *z, int h, int w,
                                const df_vae_decode_opts *opts, float *img,
                                df_timings *timings, int *tiled) {
    const df_dist_session *s = self;
    return par_decode_on(s->ds.dp.parent, vae, z, h, w, opts, img, timings, tiled);
}

df_status df_generate_session(df_dist_session *s, df_model *m, const df_gen_params *p,
                              df_image *image, df_gen_info *info) {
    DF_FAIL_IF(!s || !m || !p, DF_ERR_ARG, "NULL argument");
    df_gen_params q = *p;
    DF_TRY(shared_seed(&q, &s->ds.dp));
    df_denoiser den = {.self = s, .root = par_rank(&s->ds.dp) == 0,
                       .begin = session_begin, .eval = session_eval, .end = NULL,
                       .decode = s->single ? NULL : session_decode};
    return df_i_generate(m, &q, &den, image, info);
}
