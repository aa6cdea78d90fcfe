// Distributed UNet evaluation: topology, parameters, per-step evaluation and output gather.
// See dist.h.
#include "runtime/dist.h"

#include "runtime/patch.h"
#include "runtime/tp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Parameters and names

df_dist_params df_dist_params_default(void) {
    df_dist_params p;
    memset(&p, 0, sizeof p);
    p.parallelism = DF_PAR_PATCH;
    p.sync_mode = DF_SYNC_CORRECTED_ASYNC_GN;
    p.warmup_steps = 4;
    p.split_batch = 1;
    p.n_images = 2;
    p.comm_checkpoint = 60;
    p.comm_dtype = DF_COMM_F32;
    p.gn_compat = 0;
    p.split_scheme = DF_SPLIT_ROW;
    p.progress = DF_PROGRESS_TEST;
    return p;
}

static const char *const k_par[] = {"patch", "naive_patch", "tensor"};
static const char *const k_sync[] = {"corrected_async_gn", "sync_gn",  "stale_gn",
                                     "separate_gn",        "full_sync", "no_sync"};
static const char *const k_split[] = {"row", "col", "alternate"};

const char *df_parallelism_name(df_parallelism p) {
    return (unsigned)p < DF_PAR_COUNT ? k_par[p] : "?";
}
const char *df_sync_mode_name(df_sync_mode m) {
    return (unsigned)m < DF_SYNC_COUNT ? k_sync[m] : "?";
}
const char *df_split_scheme_name(df_split_scheme s) {
    return (unsigned)s < DF_SPLIT_COUNT ? k_split[s] : "?";
}

static int parse_name(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}
int df_parallelism_parse(const char *s, df_parallelism *out) {
    int i = parse_name(s, k_par, DF_PAR_COUNT);
    if (i < 0) return 0;
    *out = (df_parallelism)i;
    return 1;
}
int df_sync_mode_parse(const char *s, df_sync_mode *out) {
    int i = parse_name(s, k_sync, DF_SYNC_COUNT);
    if (i < 0) return 0;
    *out = (df_sync_mode)i;
    return 1;
}
int df_split_scheme_parse(const char *s, df_split_scheme *out) {
    int i = parse_name(s, k_split, DF_SPLIT_COUNT);
    if (i < 0) return 0;
    *out = (df_split_scheme)i;
    return 1;
}

// ---------------------------------------------------------------------------------------------
// Topology

df_status df_topo_compute(int N, int rank, int split_batch, int n_images, df_topo *out) {
    memset(out, 0, sizeof *out);
    DF_FAIL_IF(N < 1 || rank < 0 || rank >= N, DF_ERR_ARG, "bad rank %d of %d", rank, N);
    DF_FAIL_IF(n_images != 1 && n_images != 2, DF_ERR_ARG,
               "n_images must be 1 (no CFG) or 2 (CFG), got %d", n_images);
    out->N = N;
    out->rank = rank;
    if (split_batch && n_images == 2 && N > 1) {
        if (N % 2 != 0)
            return DF_ERROR(DF_ERR_ARG,
                            "split batch puts the two CFG halves on two equal rank groups, so "
                            "it needs an even number of ranks (got %d); run with an even number "
                            "of ranks or with --no-split-batch",
                            N);
        out->n_groups = 2;
        out->P = N / 2;
        out->group = rank / out->P;
        out->patch = rank % out->P;
        out->img0 = out->group;
        out->B = 1;
    } else {
        out->n_groups = 1;
        out->P = N;
        out->group = 0;
        out->patch = rank;
        out->img0 = 0;
        out->B = n_images;
    }
    return DF_OK;
}

void df_topo_band(int H, int P, int i, int level, int *r0, int *r1) {
    int h = (H / P) >> level;
    *r0 = i * h;
    *r1 = (i + 1) * h;
}

df_status df_topo_check_shape(int P, int n_down, int H, int W, int cols, int vae_scale) {
    DF_FAIL_IF(P < 1 || n_down < 0 || n_down > 10, DF_ERR_ARG, "bad P %d / n_down %d", P, n_down);
    DF_FAIL_IF(H < 1 || W < 1, DF_ERR_SHAPE, "bad latent size %dx%d", H, W);
    int need = P << n_down;
    int len = cols ? W : H;
    if (len % need == 0) return DF_OK;
    const char *what = cols ? "width" : "height";
    char ex[160] = "";
    if (vae_scale > 0) {
        int step = need * vae_scale, o = 0;
        o += snprintf(ex + o, sizeof ex - (size_t)o, " (image %s a multiple of %d, e.g.", what,
                      step);
        int printed = 0;
        for (int k = 1; printed < 5 && k < 1000; k++) {
            int px = k * step;
            if (px < 256) continue;
            o += snprintf(ex + o, sizeof ex - (size_t)o, "%s %d", printed ? "," : "", px);
            printed++;
        }
        snprintf(ex + o, sizeof ex - (size_t)o, ")");
    }
    char deep[96];
    if (len % (1 << n_down) == 0)
        snprintf(deep, sizeof deep, "%d %s, which does not split into %d equal bands",
                 len >> n_down, cols ? "columns" : "rows", P);
    else
        snprintf(deep, sizeof deep, "%d/%d %s, not even an integer", len, 1 << n_down,
                 cols ? "columns" : "rows");
    return DF_ERROR(DF_ERR_SHAPE,
                    "latent %dx%d cannot be cut into %d %s bands: after %d downsamplings the "
                    "deepest feature map has %s. With %d patches per image the latent %s must "
                    "be a multiple of %d%s",
                    H, W, P, cols ? "column" : "row", n_down, deep, P, what, need, ex);
}

// ---------------------------------------------------------------------------------------------
// The evaluator

struct df_dist {
    df_dist_params prm;
    df_topo topo;
    df_comm *world, *batch;
    df_patch *patch;       // DistriFusion context (P > 1, patch parallelism)
    df_tp *tp;             // tensor-parallel context (P > 1, tensor parallelism)
    df_comm *split;        // tensor parallelism with split batch: pairs {i, i + P} (output)
    int H, W, planned;     // planned latent size
    int cin, cout;
    int trace_steps;

    float *xs;  size_t xs_n;  // naive patch input [B][hs][ws][Cin]
    float *ys;  size_t ys_n;  // band output [B][hs][ws][Cout]
    float *gb;  size_t gb_n;  // gathered outputs [N][B][hs][ws][Cout]

    df_dist_step_stats last, total;
};

df_status df_dist_init(int *argc, char ***argv, int thread_multiple, int launched) {
    return df_mpi_init(argc, argv, thread_multiple, launched);
}
df_status df_dist_finalize(void) { return df_mpi_finalize(); }
void df_dist_abort(int code) { df_mpi_abort(code); }

static df_status check_params(const df_dist_params *p) {
    DF_FAIL_IF((unsigned)p->parallelism >= DF_PAR_COUNT, DF_ERR_ARG, "bad parallelism %d",
               (int)p->parallelism);
    DF_FAIL_IF((unsigned)p->sync_mode >= DF_SYNC_COUNT, DF_ERR_ARG, "bad sync mode %d",
               (int)p->sync_mode);
    DF_FAIL_IF((unsigned)p->split_scheme >= DF_SPLIT_COUNT, DF_ERR_ARG, "bad split scheme %d",
               (int)p->split_scheme);
    DF_FAIL_IF(p->warmup_steps < 0, DF_ERR_ARG, "warmup_steps must be >= 0 (got %d)",
               p->warmup_steps);
    DF_FAIL_IF(p->comm_checkpoint < 1, DF_ERR_ARG, "comm_checkpoint must be >= 1 (got %d)",
               p->comm_checkpoint);
    DF_FAIL_IF(p->comm_dtype != DF_COMM_F32 && p->comm_dtype != DF_COMM_F16, DF_ERR_ARG,
               "comm dtype must be f32 or f16 (got %s)", df_comm_dtype_name(p->comm_dtype));
    DF_FAIL_IF((unsigned)p->progress >= DF_PROGRESS_COUNT, DF_ERR_ARG, "bad progress %d",
               (int)p->progress);
    if (p->progress == DF_PROGRESS_THREAD && df_mpi_active() && !df_mpi_thread_multiple())
        return DF_ERROR(DF_ERR_UNSUPPORTED,
                        "progress=thread needs MPI_THREAD_MULTIPLE: initialise with "
                        "df_dist_init(..., thread_multiple = 1, ...)");
    return DF_OK;
}

// All ranks learn whether any rank failed; a rank that did not fail itself reports that.
static df_status agree(df_comm *world, df_status local) {
    df_status all = df_comm_agree(world, local);
    if (all == DF_OK || local != DF_OK) return local != DF_OK ? local : all;
    return DF_ERROR(all, "another rank failed (%s); see its message", df_status_str(all));
}

df_status df_dist_create(const df_dist_params *p, df_dist **out) {
    *out = NULL;
    // not initialised by the caller: a single process unless MPI is already up
    if (!df_mpi_active()) DF_TRY(df_mpi_init(NULL, NULL, p->progress == DF_PROGRESS_THREAD, 0));
    df_dist *d = calloc(1, sizeof *d);
    DF_FAIL_IF(!d, DF_ERR_NOMEM, "out of memory");
    d->prm = *p;
    // d->world: a duplicate of the parent communicator (the world unless p->parent is set)
    df_status st = p->parent ? df_comm_split(p->parent, 0, df_comm_rank(p->parent), &d->world)
                             : df_comm_world(&d->world);
    if (st != DF_OK) {
        free(d);
        return st;
    }
    st = check_params(p);
    if (st == DF_OK)
        st = df_topo_compute(df_comm_size(d->world), df_comm_rank(d->world), p->split_batch,
                             p->n_images, &d->topo);
    st = agree(d->world, st);
    if (st == DF_OK) st = df_comm_split(d->world, d->topo.group, d->topo.rank, &d->batch);
    if (st == DF_OK && df_comm_size(d->batch) != d->topo.P) {
        st = DF_ERROR(DF_ERR_INTERNAL, "batch group has %d ranks, expected %d",
                      df_comm_size(d->batch), d->topo.P);
    }
    // tensor parallelism with split batch: every rank holds its CFG half of the whole image;
    // the output is exchanged within the pair {i, i + P} (distrifuser's split_group)
    if (st == DF_OK && p->parallelism == DF_PAR_TENSOR && d->topo.P > 1 && d->topo.n_groups == 2)
        st = df_comm_split(d->world, d->topo.patch, d->topo.rank, &d->split);
    if (st != DF_OK) {
        df_dist_destroy(d);
        return st;
    }
    *out = d;
    return DF_OK;
}

void df_dist_destroy(df_dist *d) {
    if (!d) return;
    df_patch_destroy(d->patch);
    df_tp_destroy(d->tp);
    df_comm_destroy(d->split);
    df_comm_destroy(d->batch);
    df_comm_destroy(d->world);
    df_free(d->xs);
    df_free(d->ys);
    df_free(d->gb);
    free(d);
}

int df_dist_rank(const df_dist *d) { return d->topo.rank; }
int df_dist_size(const df_dist *d) { return d->topo.N; }
const df_topo *df_dist_topo(const df_dist *d) { return &d->topo; }
const df_dist_params *df_dist_params_get(const df_dist *d) { return &d->prm; }
df_comm *df_dist_world(df_dist *d) { return d->world; }
df_comm *df_dist_batch_comm(df_dist *d) { return d->batch; }

static int uses_patch_ctx(const df_dist *d) {
    return d->prm.parallelism == DF_PAR_PATCH && d->topo.P > 1;
}

static int uses_tp_ctx(const df_dist *d) {
    return d->prm.parallelism == DF_PAR_TENSOR && d->topo.P > 1;
}

static df_status ensure(float **p, size_t *cap, size_t n) {
    if (n <= *cap) return DF_OK;
    float *q = df_malloc(n * sizeof(float));
    DF_FAIL_IF(!q, DF_ERR_NOMEM, "cannot allocate %zu floats", n);
    df_free(*p);
    *p = q;
    *cap = n;
    return DF_OK;
}

static df_status plan_buffers(df_dist *d, const df_dist_model *m, int H, int W) {
    int P = d->topo.P;
    d->H = H;
    d->W = W;
    d->cin = m->in_channels;
    d->cout = m->out_channels;
    size_t B = (size_t)d->topo.B, px = (size_t)H * W / (size_t)P;
    df_tp_destroy(d->tp);
    d->tp = NULL;
    if (uses_tp_ctx(d)) { // whole image on every rank; the pair gather with split batch
        px = (size_t)H * W;
        DF_TRY(ensure(&d->ys, &d->ys_n, B * px * (size_t)d->cout));
        DF_TRY(ensure(&d->gb, &d->gb_n, (size_t)d->topo.n_groups * B * px * (size_t)d->cout));
        return df_tp_create(d->batch, &d->tp);
    }
    DF_TRY(ensure(&d->xs, &d->xs_n, B * px * (size_t)d->cin));
    DF_TRY(ensure(&d->ys, &d->ys_n, B * px * (size_t)d->cout));
    DF_TRY(ensure(&d->gb, &d->gb_n, (size_t)d->topo.N * B * px * (size_t)d->cout));
    df_patch_destroy(d->patch);
    d->patch = NULL;
    if (uses_patch_ctx(d)) {
        DF_TRY(df_patch_create(d->batch, &d->prm, &d->patch));
        if (d->trace_steps) DF_TRY(df_patch_trace_enable(d->patch, d->trace_steps));
    }
    return DF_OK;
}

df_status df_dist_plan(df_dist *d, const df_dist_model *m, int H, int W) {
    DF_FAIL_IF(!m || !m->forward, DF_ERR_ARG, "no model");
    DF_FAIL_IF(m->in_channels < 1 || m->out_channels < 1, DF_ERR_ARG, "bad model channels");
    int P = d->topo.P;
    if (d->prm.parallelism == DF_PAR_NAIVE_PATCH && P > 1) {
        df_split_scheme s = d->prm.split_scheme;
        if (s != DF_SPLIT_COL) DF_TRY(df_topo_check_shape(P, m->n_down, H, W, 0, 8));
        if (s != DF_SPLIT_ROW) DF_TRY(df_topo_check_shape(P, m->n_down, H, W, 1, 8));
    } else if (P > 1 && d->prm.parallelism != DF_PAR_TENSOR) { // tensor: whole image, any size
        DF_TRY(df_topo_check_shape(P, m->n_down, H, W, 0, 8));
    }
    if (d->planned && (H != d->H || W != d->W || m->in_channels != d->cin ||
                       m->out_channels != d->cout)) {
        // new size: drop the old plan
        df_patch_destroy(d->patch);
        d->patch = NULL;
        d->planned = 0;
    }
    if (d->planned) return DF_OK;
    df_status st = plan_buffers(d, m, H, W);
    st = agree(d->world, st);
    if (st != DF_OK) return st;
    d->planned = 1;
    return DF_OK;
}

// Copies rows [r0,r1) x cols [c0,c1) of B images [B][H][W][C] into dst [B][r1-r0][c1-c0][C].
static void cut(float *dst, const float *src, int B, int H, int W, int C, int r0, int r1, int c0,
                int c1) {
    size_t w = (size_t)(c1 - c0) * C;
    for (int b = 0; b < B; b++)
        for (int y = r0; y < r1; y++)
            memcpy(dst + (((size_t)b * (r1 - r0) + (y - r0)) * w),
                   src + (((size_t)b * H + y) * W + c0) * C, w * sizeof(float));
}

// Inverse of cut.
static void paste(float *dst, const float *src, int B, int H, int W, int C, int r0, int r1,
                  int c0, int c1) {
    size_t w = (size_t)(c1 - c0) * C;
    for (int b = 0; b < B; b++)
        for (int y = r0; y < r1; y++)
            memcpy(dst + (((size_t)b * H + y) * W + c0) * C,
                   src + (((size_t)b * (r1 - r0) + (y - r0)) * w), w * sizeof(float));
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
    t->step = s->step;
}

df_status df_dist_eval(df_dist *d, const df_dist_model *m, int step, const float *x_full, int H,
                       int W, float timestep, float *eps_full) {
    double t0 = df_time_s();
    DF_FAIL_IF(step < 0, DF_ERR_ARG, "negative step %d", step);
    DF_TRY(df_dist_plan(d, m, H, W));
    const df_topo *tp = &d->topo;
    int P = tp->P, B = tp->B, Cin = d->cin, Cout = d->cout;
    int images[2] = {tp->img0, tp->img0 + 1};
    const float *x_mine = x_full + (size_t)tp->img0 * H * W * Cin; // [B][H][W][Cin]

    df_dist_step_stats s;
    memset(&s, 0, sizeof s);
    s.step = step;

    // band geometry of this step
    int rows = 1; // 1: row bands, 0: column bands
    if (d->prm.parallelism == DF_PAR_NAIVE_PATCH) {
        if (d->prm.split_scheme == DF_SPLIT_COL) rows = 0;
        else if (d->prm.split_scheme == DF_SPLIT_ALTERNATE) rows = (step % 2) == 0;
    }
    int hs = rows ? H / P : H, ws = rows ? W : W / P;

    double tf0 = df_time_s();
    df_status st = DF_OK;
    if (uses_tp_ctx(d)) {
        // tensor parallelism: the whole image of this group's images, split layers all-reduced
        df_tp_stats_reset(d->tp);
        st = m->forward(m->self, df_tp_ctx(d->tp, H), x_mine, B, images, H, W, timestep, d->ys);
        df_tp_stats ts;
        df_tp_stats_get(d->tp, &ts);
        s.sync = 1;
        s.t_wait = ts.t_wait;
        s.bytes_sent = ts.bytes_sent;
        s.bytes_recv = ts.bytes_recv;
        s.n_collectives = ts.n_allreduce;
        double tf1 = df_time_s();
        if (st != DF_OK) return st;
        s.t_compute = (tf1 - tf0) - s.t_wait;
        size_t blk = (size_t)B * H * W * Cout;
        if (tp->n_groups == 1) { // every rank holds every image
            memcpy(eps_full, d->ys, blk * sizeof(float));
        } else { // the other CFG half from the partner rank of the other group
            double tg = df_time_s();
            DF_TRY(df_comm_allgather(d->split, d->ys, d->gb, blk * sizeof(float)));
            s.t_gather = df_time_s() - tg;
            s.bytes_gather = (uint64_t)blk * sizeof(float);
            memcpy(eps_full, d->gb, 2 * blk * sizeof(float)); // pair rank = group = image
        }
        s.t_total = df_time_s() - t0;
        d->last = s;
        add_stats(&d->total, &s);
        return DF_OK;
    }
    if (uses_patch_ctx(d)) {
        df_xchg *x = df_patch_xchg(d->patch);
        df_xchg_stats_reset(x);
        st = df_patch_begin(d->patch, step, x_mine, B, H, W, Cin);
        if (st == DF_OK) {
            int p = tp->patch;
            cut(d->xs, x_mine, B, H, W, Cin, p * hs, (p + 1) * hs, 0, W);
            st = m->forward(m->self, df_patch_ctx(d->patch), d->xs, B, images, H, W, timestep,
                            d->ys);
            if (st == DF_OK) st = df_patch_end(d->patch);
            else df_patch_abort_step(d->patch); // keep the model's error message
        }
        df_xchg_stats xs;
        df_xchg_stats_get(x, &xs);
        s.sync = df_patch_step_sync(d->patch);
        s.t_wait = xs.t_wait;
        s.t_progress = xs.t_progress;
        s.bytes_sent = xs.bytes_sent;
        s.bytes_recv = xs.bytes_recv;
        s.n_collectives = xs.n_collectives;
        s.n_waits_blocked = xs.n_waits_blocked;
    } else {
        // single rank per image or naive patch: the sub-image is a whole image for the model
        df_pctx ctx;
        const float *xin = x_mine;
        if (P > 1) {
            int p = tp->patch;
            if (rows) cut(d->xs, x_mine, B, H, W, Cin, p * hs, (p + 1) * hs, 0, W);
            else cut(d->xs, x_mine, B, H, W, Cin, 0, H, p * ws, (p + 1) * ws);
            xin = d->xs;
        }
        df_pctx_single_init(&ctx, hs);
        st = m->forward(m->self, &ctx, xin, B, images, hs, ws, timestep, d->ys);
        s.sync = 1;
    }
    double tf1 = df_time_s();
    if (st != DF_OK) return st;
    s.t_compute = (tf1 - tf0) - s.t_wait - s.t_progress;

    // gather the noise prediction on every rank
    size_t blk = (size_t)B * hs * ws * Cout;
    if (tp->N == 1) {
        memcpy(eps_full, d->ys, blk * sizeof(float));
    } else {
        double tg = df_time_s();
        DF_TRY(df_comm_allgather(d->world, d->ys, d->gb, blk * sizeof(float)));
        s.t_gather = df_time_s() - tg;
        s.bytes_gather = (uint64_t)(tp->N - 1) * blk * sizeof(float);
        for (int r = 0; r < tp->N; r++) {
            df_topo o;
            DF_TRY(df_topo_compute(tp->N, r, d->prm.split_batch, d->prm.n_images, &o));
            float *dst = eps_full + (size_t)o.img0 * H * W * Cout;
            const float *src = d->gb + (size_t)r * blk;
            if (rows) paste(dst, src, B, H, W, Cout, o.patch * hs, (o.patch + 1) * hs, 0, W);
            else paste(dst, src, B, H, W, Cout, 0, H, o.patch * ws, (o.patch + 1) * ws);
        }
    }
    s.t_total = df_time_s() - t0;
    d->last = s;
    add_stats(&d->total, &s);
    return DF_OK;
}

void df_dist_last_stats(const df_dist *d, df_dist_step_stats *out) { *out = d->last; }
void df_dist_total_stats(const df_dist *d, df_dist_step_stats *out) { *out = d->total; }

int df_dist_comm_tensors(const df_dist *d) {
    return d->patch ? df_xchg_count(df_patch_xchg(d->patch)) : 0;
}
size_t df_dist_comm_slot_elems(const df_dist *d) {
    return d->patch ? df_xchg_slot_elems(df_patch_xchg(d->patch)) : 0;
}
size_t df_dist_comm_slot_bytes(const df_dist *d) {
    return d->patch ? df_xchg_slot_bytes(df_patch_xchg(d->patch)) : 0;
}
uint64_t df_dist_async_step_bytes(const df_dist *d) {
    if (!d->patch || d->prm.sync_mode == DF_SYNC_NO_SYNC || d->prm.sync_mode == DF_SYNC_FULL_SYNC)
        return 0;
    return (uint64_t)(d->topo.P - 1) * df_dist_comm_slot_bytes(d);
}

df_status df_dist_trace_enable(df_dist *d, int max_steps) {
    DF_FAIL_IF(d->planned, DF_ERR_ARG, "enable the trace before the first step");
    DF_FAIL_IF(max_steps < 1, DF_ERR_ARG, "trace needs max_steps >= 1");
    d->trace_steps = max_steps;
    return DF_OK;
}
const uint64_t *df_dist_trace_sent(const df_dist *d) {
    return d->patch ? df_patch_trace_sent(d->patch) : NULL;
}
const uint64_t *df_dist_trace_read(const df_dist *d) {
    return d->patch ? df_patch_trace_read(d->patch) : NULL;
}
