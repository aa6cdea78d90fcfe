// The engine (include/distrifuse/engine.h): one code path for every generation. df_generate,
// df_engine_generate in one process and df_engine_generate over MPI ranks all run
// df_i_generate with a runner's denoiser: the plain single-rank UNet forward, or df_dist_eval
// over the image group's ranks (runtime/dist.h), the runtime kept across generations.
#include "distrifuse/engine.h"

#include "pipeline/pipeline_impl.h"
#include "core/cpu.h"
#include "model/unet_tp.h"
#include "runtime/comm.h"
#include "runtime/dist.h"
#include "runtime/dist_unet.h"
#include "runtime/vae_dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---------------------------------------------------------------------------------------------
// Names and parameters

static const char *const k_gn[] = {"exact", "original"};

const char *df_gn_compat_name(df_gn_compat g) {
    return (unsigned)g < DF_GN_COMPAT_COUNT ? k_gn[g] : "?";
}

int df_gn_compat_parse(const char *s, df_gn_compat *out) {
    for (int i = 0; s && i < DF_GN_COMPAT_COUNT; i++)
        if (strcmp(s, k_gn[i]) == 0) {
            *out = (df_gn_compat)i;
            return 1;
        }
    return 0;
}

df_parallel_params df_parallel_params_default(void) {
    const df_dist_params d = df_dist_params_default();
    df_parallel_params p;
    memset(&p, 0, sizeof p);
    p.parallelism = d.parallelism;
    p.sync_mode = d.sync_mode;
    p.warmup_steps = d.warmup_steps;
    p.split_batch = d.split_batch;
    p.comm_checkpoint = d.comm_checkpoint;
    p.comm_dtype = d.comm_dtype;
    p.gn_compat = d.gn_compat ? DF_GN_ORIGINAL : DF_GN_EXACT;
    p.split_scheme = d.split_scheme;
    p.progress = d.progress;
    p.halo_allgather = d.halo_allgather;
    p.parallel_vae = 1;
    p.image_groups = 1;
    p.cpu_variant = DF_CPU_AUTO;
    p.compute = DF_COMPUTE_F32;
    p.rank_timeout_s = 0;
    return p;
}

int df_parallel_band_weights_parse(const char *s, df_parallel_params *p, char *err,
                                   size_t cap) {
    df_dist_params d = df_dist_params_default();
    if (!df_band_weights_parse(s, &d, err, cap)) return 0;
    p->n_band_weights = d.n_band_weights;
    memcpy(p->band_weights, d.band_weights, sizeof p->band_weights);
    p->band_weights_auto = d.band_weights_auto;
    return 1;
}

// The runtime's parameters (n_images is set per generation from the guidance).
static df_dist_params to_dist(const df_parallel_params *p, df_comm *parent) {
    df_dist_params d = df_dist_params_default();
    d.parallelism = p->parallelism;
    d.sync_mode = p->sync_mode;
    d.warmup_steps = p->warmup_steps;
    d.split_batch = p->split_batch;
    d.comm_checkpoint = p->comm_checkpoint;
    d.comm_dtype = p->comm_dtype;
    d.gn_compat = p->gn_compat == DF_GN_ORIGINAL;
    d.split_scheme = p->split_scheme;
    d.progress = p->progress;
    d.parent = parent;
    d.n_band_weights = p->n_band_weights;
    memcpy(d.band_weights, p->band_weights, sizeof d.band_weights);
    d.band_weights_auto = p->band_weights_auto;
    d.halo_allgather = p->halo_allgather;
    return d;
}

// ---------------------------------------------------------------------------------------------
// Bootstrap: MPI (or none) and a duplicate of the world for the whole-job collectives

static int g_boot;          // df_parallel_init ran (and df_parallel_finalize not yet)
static df_comm *g_world;    // world duplicate (N > 1)

df_status df_parallel_init(int *argc, char ***argv, int thread_multiple, int launched) {
    if (g_boot) return DF_OK;
    DF_TRY(df_mpi_init(argc, argv, thread_multiple, launched));
    if (df_mpi_world_size() > 1) DF_TRY(df_comm_world(&g_world));
    g_boot = 1;
    return DF_OK;
}

df_status df_parallel_finalize(void) {
    df_comm_destroy(g_world);
    g_world = NULL;
    g_boot = 0;
    return df_mpi_finalize();
}

void df_parallel_abort(int code) { df_mpi_abort(code); }
int df_world_rank(void) { return df_mpi_world_rank(); }
int df_world_size(void) { return df_mpi_world_size(); }

df_status df_world_barrier(void) { return g_world ? df_comm_barrier(g_world) : DF_OK; }

df_status df_world_allreduce_max_i32(int *buf, size_t n) {
    return g_world ? df_comm_allreduce_max_i32(g_world, buf, n) : DF_OK;
}

df_status df_world_allreduce_sum_f64(double *buf, size_t n) {
    return g_world ? df_comm_allreduce_sum_f64(g_world, buf, n) : DF_OK;
}

df_status df_world_allgather(const void *send, void *recv, size_t bytes) {
    if (g_world) return df_comm_allgather(g_world, send, recv, bytes);
    if (recv != send) memmove(recv, send, bytes);
    return DF_OK;
}

df_status df_world_bcast(void *buf, size_t bytes, int root) {
    return g_world ? df_comm_bcast(g_world, buf, bytes, root) : DF_OK;
}

// The failure of any rank is the failure of all: the lowest failing rank keeps its error, the
// others get DF_ERR_PEER. Collective over the world.
static df_status agree_world(df_status local) {
    const int N = df_world_size(), r = df_world_rank();
    if (N <= 1) return local;
    int worst = local != DF_OK ? N - r : 0; // max over ranks -> the lowest failing rank
    DF_TRY(df_world_allreduce_max_i32(&worst, 1));
    if (!worst) return DF_OK;
    if (local != DF_OK && r == N - worst) return local;
    return DF_ERROR(DF_ERR_PEER, "rank %d failed", N - worst);
}

// ---------------------------------------------------------------------------------------------
// The distributed denoiser: df_i_generate's UNet evaluation through df_dist_eval

typedef struct dist_state {
    df_dist_params dp;
    df_dist *d;
    df_dist_unet *du;
    int h, w;
} dist_state;

static df_status dist_begin(dist_state *s, df_unet *unet, const df_cond *c, int h, int w) {
    s->dp.n_images = c->n_img;
    s->h = h;
    s->w = w;
    DF_TRY(df_dist_create(&s->dp, &s->d));
    return df_dist_unet_create(s->d, unet, h, w, c->enc, c->T, c->text_embeds, c->time_ids,
                               &s->du);
}

static void dist_end(dist_state *s) {
    df_dist_unet_destroy(s->du);
    df_dist_destroy(s->d);
    s->du = NULL;
    s->d = NULL;
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

// ---------------------------------------------------------------------------------------------
// The runner: the denoiser of every generation (single rank, or the runtime kept across calls)

typedef struct runner {
    int single;                      // 1 process: plain UNet forward, no runtime
    df_denoiser single_den;
    df_denoiser_single_state single_state;
    dist_state ds;                   // distributed path (ds.d / ds.du kept across generations)
    const df_unet *unet;             // the UNet the runtime was made for
    df_engine_step_fn step_fn;
    void *user;
    df_dist_step_stats gen_total;    // this rank's sums over the last generation's steps
} runner;

static void runner_init(runner *r, int single, const df_dist_params *dp) {
    memset(r, 0, sizeof *r);
    r->single = single;
    if (dp) r->ds.dp = *dp;
    df_i_denoiser_single(&r->single_den, &r->single_state);
}

static void runner_free(runner *r) {
    if (r->ds.d || r->ds.du) dist_end(&r->ds);
}

static void add_stats(df_dist_step_stats *t, const df_dist_step_stats *s) {
    t->t_total += s->t_total;
    t->t_compute += s->t_compute;
    t->t_wait += s->t_wait;
    t->t_progress += s->t_progress;
    t->t_gather += s->t_gather;
    t->bytes_sent += s->bytes_sent;
    t->bytes_recv += s->bytes_recv;
    t->bytes_gather += s->bytes_gather;
    t->n_collectives += s->n_collectives;
    t->n_waits_blocked += s->n_waits_blocked;
    t->bytes_halo += s->bytes_halo;
    t->bytes_kv += s->bytes_kv;
    t->bytes_gn += s->bytes_gn;
    t->bytes_tp += s->bytes_tp;
    t->bytes_output += s->bytes_output;
    t->step = s->step;
}

static df_status runner_begin(void *self, df_unet *unet, const df_cond *c, int h, int w) {
    runner *r = self;
    if (r->single) return r->single_den.begin(r->single_den.self, unet, c, h, w);
    dist_state *d = &r->ds;
    if (d->d && d->du && r->unet == unet && d->h == h && d->w == w &&
        d->dp.n_images == c->n_img)
        return df_dist_unet_set_text(d->du, c->enc, c->text_embeds, c->time_ids); // reuse
    if (d->d || d->du) dist_end(d); // another model / size / batch: a new runtime
    r->unet = unet;
    return dist_begin(d, unet, c, h, w);
}

static df_status runner_eval(void *self, int call, const float *x, float t, float *eps) {
    runner *r = self;
    const double t0 = df_time_s();
    df_status st = r->single
                       ? r->single_den.eval(r->single_den.self, call, x, t, eps)
                       : df_dist_eval(r->ds.d, df_dist_unet_model(r->ds.du), call, x, r->ds.h,
                                      r->ds.w, t, eps);
    const double dt = df_time_s() - t0;
    if (st != DF_OK) return st;
    df_dist_step_stats ss;
    memset(&ss, 0, sizeof ss);
    if (r->single) {
        ss.step = call;
        ss.sync = 1;
        ss.t_total = ss.t_compute = dt;
    } else {
        df_dist_last_stats(r->ds.d, &ss);
        add_stats(&r->gen_total, &ss);
    }
    if (r->step_fn) r->step_fn(r->user, call, dt, &ss);
    return DF_OK;
}

// The parallel VAE decode over all ranks of the generation (both CFG groups).
static df_status runner_decode(void *self, df_vae *vae, const float *z, int h, int w,
                               const df_vae_decode_opts *opts, float *img, df_timings *timings,
                               int *tiled) {
    const runner *r = self;
    df_vae_dist_times t;
    df_status st = df_vae_decode_dist(vae, r->ds.dp.parent, z, h, w, opts, img, &t);
    timings->vae_halo_s = t.halo_s;
    timings->vae_gather_s = t.gather_s;
    *tiled = t.tiled;
    return st;
}

static df_status runner_generate(runner *r, df_model *m, const df_gen_params *p,
                                 df_image *image, df_gen_info *info) {
    df_gen_params q = *p;
    if (!r->single) DF_TRY(shared_seed(&q, &r->ds.dp));
    memset(&r->gen_total, 0, sizeof r->gen_total);
    df_denoiser den = {.self = r, .root = r->single || par_rank(&r->ds.dp) == 0,
                       .begin = runner_begin, .eval = runner_eval, .end = NULL,
                       .decode = r->single ? NULL : runner_decode};
    return df_i_generate(m, &q, &den, image, info);
}

df_status df_generate(df_model *m, const df_gen_params *params, df_image *image,
                      df_gen_info *info) {
    DF_FAIL_IF(!m || !params, DF_ERR_ARG, "NULL argument");
    runner r;
    runner_init(&r, 1, NULL);
    df_status st = runner_generate(&r, m, params, image, info);
    runner_free(&r);
    return st;
}

// ---------------------------------------------------------------------------------------------
// The engine

struct df_engine {
    df_parallel_params pp;
    df_model *model;
    int we_boot;       // this engine ran df_parallel_init (finalises on destroy)
    int rank, size;    // in the job
    int G, per, grp;   // image groups, ranks per group, this rank's group
    df_comm *group;    // the group's ranks (G > 1 and per > 1); NULL: the world
    runner r;
};

// Checks a generation against the topology of N ranks (pure arithmetic).
static df_status check_ranks(const df_model *m, const df_gen_params *p,
                             const df_dist_params *dp, int N) {
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

static df_status check_params(const df_parallel_params *p, int N) {
    DF_FAIL_IF((unsigned)p->parallelism >= DF_PAR_COUNT, DF_ERR_ARG, "unknown parallelism %d",
               (int)p->parallelism);
    DF_FAIL_IF((unsigned)p->sync_mode >= DF_SYNC_COUNT, DF_ERR_ARG, "unknown sync mode %d",
               (int)p->sync_mode);
    DF_FAIL_IF((unsigned)p->split_scheme >= DF_SPLIT_COUNT, DF_ERR_ARG,
               "unknown split scheme %d", (int)p->split_scheme);
    DF_FAIL_IF((unsigned)p->comm_dtype >= DF_COMM_DTYPE_USER_COUNT, DF_ERR_ARG,
               "unknown comm dtype %d", (int)p->comm_dtype);
    DF_FAIL_IF((unsigned)p->progress >= DF_PROGRESS_COUNT, DF_ERR_ARG,
               "unknown progress strategy %d", (int)p->progress);
    DF_FAIL_IF((unsigned)p->gn_compat >= DF_GN_COMPAT_COUNT, DF_ERR_ARG,
               "unknown gn-compat %d", (int)p->gn_compat);
    DF_FAIL_IF(p->warmup_steps < 0, DF_ERR_ARG, "--warmup-steps must be >= 0");
    DF_FAIL_IF(p->comm_checkpoint < 1, DF_ERR_ARG, "--comm-checkpoint must be >= 1");
    DF_FAIL_IF(p->n_band_weights < 0 || p->n_band_weights > DF_MAX_BAND_WEIGHTS, DF_ERR_ARG,
               "%d band weights (0..%d)", p->n_band_weights, DF_MAX_BAND_WEIGHTS);
    DF_FAIL_IF(!(p->rank_timeout_s >= 0), DF_ERR_ARG, "--rank-timeout must be >= 0 (0 = off)");
    DF_FAIL_IF(p->image_groups < 1 || N % p->image_groups != 0, DF_ERR_ARG,
               "--image-groups %d must divide the number of ranks (%d)", p->image_groups, N);
    return DF_OK;
}

df_status df_engine_create(const char *model, const df_load_params *lp,
                           const df_parallel_params *pp, int launched, df_engine **out) {
    DF_FAIL_IF(!out, DF_ERR_ARG, "NULL argument");
    *out = NULL;
    DF_FAIL_IF(!model || !pp, DF_ERR_ARG, "NULL argument");
    const int had_boot = g_boot;
    DF_TRY(df_parallel_init(NULL, NULL, pp->progress == DF_PROGRESS_THREAD, launched));
    df_engine *e = calloc(1, sizeof *e);
    df_status st = e ? DF_OK : DF_ERROR(DF_ERR_NOMEM, "out of memory (engine)");
    if (e) {
        e->pp = *pp;
        e->we_boot = !had_boot;
        e->rank = df_world_rank();
        e->size = df_world_size();
        st = check_params(pp, e->size); // identical on every rank
    }
    if (st == DF_OK && df_cpu_set_variant(pp->cpu_variant) != 0)
        st = DF_ERROR(DF_ERR_UNSUPPORTED, "this CPU does not support the %s kernels",
                      df_cpu_variant_name(pp->cpu_variant));
    st = agree_world(st);
    if (st == DF_OK) {
        e->G = pp->image_groups;
        e->per = e->size / e->G;
        e->grp = e->rank / e->per;
        if (e->G > 1 && e->per > 1)
            st = agree_world(df_comm_split(g_world, e->grp, e->rank, &e->group));
    }
    if (st == DF_OK) st = agree_world(df_model_load_ex(model, lp, &e->model));
    if (st != DF_OK) {
        df_engine_destroy(e);
        return st;
    }
    const df_dist_params dp = to_dist(pp, e->group);
    runner_init(&e->r, e->per <= 1, &dp);
    *out = e;
    return DF_OK;
}

void df_engine_destroy(df_engine *e) {
    if (!e) return;
    runner_free(&e->r);
    df_model_free(e->model);
    df_comm_destroy(e->group);
    const int boot = e->we_boot;
    free(e);
    if (boot) df_parallel_finalize();
}

df_model *df_engine_model(df_engine *e) { return e ? e->model : NULL; }
const df_parallel_params *df_engine_params(const df_engine *e) { return e ? &e->pp : NULL; }
int df_engine_rank(const df_engine *e) { return e ? e->rank : 0; }
int df_engine_size(const df_engine *e) { return e ? e->size : 1; }
int df_engine_group(const df_engine *e) { return e ? e->grp : 0; }
int df_engine_group_size(const df_engine *e) { return e ? e->per : 1; }
int df_engine_is_output_rank(const df_engine *e) { return !e || e->rank % e->per == 0; }

int df_engine_split_batch(const df_engine *e) {
    return e && e->pp.split_batch && e->per % 2 == 0;
}

df_status df_engine_group_bcast(df_engine *e, void *buf, size_t bytes) {
    DF_FAIL_IF(!e, DF_ERR_ARG, "NULL argument");
    if (e->per <= 1) return DF_OK;
    if (e->group) return df_comm_bcast(e->group, buf, bytes, 0);
    return df_world_bcast(buf, bytes, 0); // one group: the world
}

df_status df_engine_check(const df_engine *e, const df_gen_params *p) {
    DF_FAIL_IF(!e || !p, DF_ERR_ARG, "NULL argument");
    DF_TRY(df_gen_params_validate(e->model, p));
    if (e->per <= 1) return DF_OK;
    return check_ranks(e->model, p, &e->r.ds.dp, e->per);
}

void df_engine_set_step_callback(df_engine *e, df_engine_step_fn fn, void *user) {
    if (!e) return;
    e->r.step_fn = fn;
    e->r.user = user;
}

df_status df_engine_generate(df_engine *e, const df_gen_params *p, df_image *image,
                             df_gen_info *info) {
    DF_FAIL_IF(!e || !p, DF_ERR_ARG, "NULL argument");
    df_gen_params q = *p;
    if (!e->pp.parallel_vae) q.parallel_vae = 0;
    if (q.compute == DF_COMPUTE_F32) q.compute = e->pp.compute;
    return runner_generate(&e->r, e->model, &q, image, info);
}

void df_engine_last_stats(const df_engine *e, df_dist_step_stats *out) {
    if (e) *out = e->r.gen_total;
    else memset(out, 0, sizeof *out);
}

int df_engine_comm_tensors(const df_engine *e) {
    if (!e || !e->r.ds.d) return 0;
    return df_dist_comm_tensors(e->r.ds.d);
}

int df_engine_band_plan(const df_engine *e, char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    if (!e || !e->r.ds.d) return 0;
    return df_dist_band_plan_str(e->r.ds.d, buf, cap);
}
