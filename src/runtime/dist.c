// Distributed UNet evaluation: topology, parameters, per-step evaluation and output gather.
// See dist.h.
#include "runtime/dist.h"

#include "runtime/bands.h"
#include "runtime/patch.h"
#include "runtime/tp.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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
    // 5, not the original's 60 (which batches for GPU launch overhead): over TCP a smaller batch
    // keeps more transfers in flight, so each MPI_Testsome poll moves more bytes and the exchange
    // flows during the step (SDXL 768x768 at 1 Gbit/s: end-of-step wait 5.1 -> 1.2 s; no cost
    // on shared memory; docs/scaling.md). Results do not depend on it.
    p.comm_checkpoint = 5;
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

int df_band_weights_parse(const char *s, df_dist_params *p, char *err, size_t cap) {
    if (!s || !*s) {
        snprintf(err, cap, "--band-weights needs 'auto' or a list w0,w1,... of numbers > 0");
        return 0;
    }
    if (strcmp(s, "auto") == 0) {
        p->band_weights_auto = 1;
        p->n_band_weights = 0;
        return 1;
    }
    int n = 0;
    const char *c = s;
    while (*c) {
        if (n == DF_MAX_BAND_WEIGHTS) {
            snprintf(err, cap, "--band-weights: more than %d weights", DF_MAX_BAND_WEIGHTS);
            return 0;
        }
        char *end = NULL;
        errno = 0;
        double v = strtod(c, &end);
        if (end == c || errno != 0 || !(v > 0) || !isfinite(v) || (*end && *end != ',')) {
            snprintf(err, cap,
                     "--band-weights: '%s' is not a list of numbers > 0 (w0,w1,...) or 'auto'",
                     s);
            return 0;
        }
        p->band_weights[n++] = v;
        c = *end ? end + 1 : end;
        if (*end && !*c) {
            snprintf(err, cap, "--band-weights: '%s' ends with a comma", s);
            return 0;
        }
    }
    p->n_band_weights = n;
    p->band_weights_auto = 0;
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
    if (split_batch && n_images == 2 && N > 1 && N % 2 != 0)
        out->split_fallback = 1; // two equal rank groups are impossible: one group of N
    if (split_batch && n_images == 2 && N > 1 && !out->split_fallback) {
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

df_status df_topo_bands(int H, int n_down, int P, const double *weights, int *deep_rows) {
    DF_FAIL_IF(P < 1 || n_down < 0 || n_down > 10, DF_ERR_ARG, "bad P %d / n_down %d", P, n_down);
    DF_FAIL_IF(H < 1 || H % (1 << n_down) != 0, DF_ERR_SHAPE,
               "latent height %d is not a multiple of %d", H, 1 << n_down);
    return df_bands_rows(H >> n_down, P, weights, deep_rows);
}

// Message for a latent `len` that is not a multiple of 2^n_down (any P).
static df_status not_multiple(int H, int W, int n_down, int cols, int vae_scale) {
    const char *what = cols ? "width" : "height";
    int need = 1 << n_down, len = cols ? W : H;
    char ex[96] = "";
    if (vae_scale > 0)
        snprintf(ex, sizeof ex, " (image %s a multiple of %d)", what, need * vae_scale);
    return DF_ERROR(DF_ERR_SHAPE,
                    "latent %dx%d cannot be cut into %s bands: after %d downsamplings the "
                    "deepest feature map has %d/%d %s, not an integer; the latent %s must be a "
                    "multiple of %d%s",
                    H, W, cols ? "column" : "row", n_down, len, need,
                    cols ? "columns" : "rows", what, need, ex);
}

df_status df_topo_check_ranks(int N, int split_batch, int n_images, int n_down, int H, int W,
                              int cols, int vae_scale) {
    DF_FAIL_IF(N < 1 || n_down < 0 || n_down > 10, DF_ERR_ARG, "bad N %d / n_down %d", N, n_down);
    DF_FAIL_IF(H < 1 || W < 1, DF_ERR_SHAPE, "bad latent size %dx%d", H, W);
    df_topo t;
    DF_TRY(df_topo_compute(N, 0, split_batch, n_images, &t));
    if (t.P == 1) return DF_OK;
    int len = cols ? W : H;
    if (len % (1 << n_down) != 0) return not_multiple(H, W, n_down, cols, vae_scale);
    int D = len >> n_down;
    if (D >= t.P) return DF_OK;
    int cfg_split = split_batch && n_images == 2;
    int largest = cfg_split ? 2 * D : D;
    char px[64] = "";
    if (vae_scale > 0)
        snprintf(px, sizeof px, " (%dx%d pixels)", H * vae_scale, W * vae_scale);
    return DF_ERROR(DF_ERR_SHAPE,
                    "%d ranks are too many for latent %dx%d%s: %d %s bands per image, but the "
                    "deepest feature map (after %d downsamplings) has only %d %s and every band "
                    "needs at least one; the largest N for this size is %d%s",
                    N, H, W, px, t.P, cols ? "column" : "row", n_down, D,
                    cols ? "columns" : "rows", largest,
                    cfg_split ? " (split batch: two CFG groups)" : "");
}

df_status df_topo_check_shape(int P, int n_down, int H, int W, int cols, int vae_scale) {
    DF_FAIL_IF(P < 1 || n_down < 0 || n_down > 10, DF_ERR_ARG, "bad P %d / n_down %d", P, n_down);
    DF_FAIL_IF(H < 1 || W < 1, DF_ERR_SHAPE, "bad latent size %dx%d", H, W);
    int len = cols ? W : H;
    if (P == 1) return DF_OK;
    if (len % (1 << n_down) != 0) return not_multiple(H, W, n_down, cols, vae_scale);
    if ((len >> n_down) >= P) return DF_OK;
    int need = P << n_down;
    const char *what = cols ? "width" : "height";
    char ex[128] = "";
    if (vae_scale > 0)
        snprintf(ex, sizeof ex, " (image %s at least %d pixels, a multiple of %d)", what,
                 need * vae_scale, (1 << n_down) * vae_scale);
    return DF_ERROR(DF_ERR_SHAPE,
                    "latent %dx%d cannot be cut into %d %s bands: after %d downsamplings the "
                    "deepest feature map has %d %s, fewer than the bands (at most %d bands for "
                    "this size). With %d patches per image the latent %s must be at least %d%s",
                    H, W, P, cols ? "column" : "row", n_down, len >> n_down,
                    cols ? "columns" : "rows", len >> n_down, P, what, need, ex);
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
    int n_down;
    int trace_steps;

    // band plan (P bands per image): deepest-level rows of the row bands and of the column
    // bands (naive patch col / alternate), and their starts at the latent level
    int *rdeep, *rstart, *cdeep, *cstart;
    int bands_rows_last;   // the last step used row bands (1) or column bands (0)
    // --band-weights auto: whether the bands were re-planned (after the plan's first step)
    int auto_done;
    long dbg_minflt, dbg_majflt; // page faults and CPU time at the last debug step profile
    double dbg_utime, dbg_stime;

    float *xs;  size_t xs_n;  // band input [B][hs][ws][Cin]
    float *ys;  size_t ys_n;  // band output [B][hs][ws][Cout]
    float *gb;  size_t gb_n;  // gathered outputs, rank order, variable size
    int *gcnt, *gdsp;         // [N] bytes / displacement of every rank's output block

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
    DF_FAIL_IF(p->n_band_weights < 0 || p->n_band_weights > DF_MAX_BAND_WEIGHTS, DF_ERR_ARG,
               "bad number of band weights %d", p->n_band_weights);
    for (int i = 0; i < p->n_band_weights; i++)
        DF_FAIL_IF(!(p->band_weights[i] > 0) || !isfinite(p->band_weights[i]), DF_ERR_ARG,
                   "band weight %d is %g (must be a number > 0)", i, p->band_weights[i]);
    DF_FAIL_IF(p->n_band_weights > 0 && p->band_weights_auto, DF_ERR_ARG,
               "--band-weights: give either weights or 'auto'");
    if ((p->n_band_weights > 0 || p->band_weights_auto) && p->parallelism == DF_PAR_TENSOR)
        return DF_ERROR(DF_ERR_ARG, "--band-weights needs row bands: --parallelism patch or "
                                    "naive_patch (tensor parallelism has no bands)");
    if (p->band_weights_auto && p->parallelism != DF_PAR_PATCH)
        return DF_ERROR(DF_ERR_ARG, "--band-weights auto times the synchronous warm-up steps, "
                                    "so it needs --parallelism patch");
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
    if (st == DF_OK && p->n_band_weights > 0 && p->n_band_weights != d->topo.P)
        st = DF_ERROR(DF_ERR_ARG,
                      "--band-weights has %d weights, but there are %d bands per image (one "
                      "weight per rank of a CFG group)",
                      p->n_band_weights, d->topo.P);
    st = agree(d->world, st);
    if (st == DF_OK && d->topo.split_fallback) {
        d->prm.split_batch = 0; // the topology of no split batch, everywhere below
        if (d->topo.rank == 0)
            df_log(DF_LOG_INFO, "%d ranks is odd: CFG cannot split into two equal groups, "
                                "running as --no-split-batch (%d bands per image)",
                   d->topo.N, d->topo.P);
    }
    if (st == DF_OK) st = df_comm_split(d->world, d->topo.group, d->topo.rank, &d->batch);
    if (st == DF_OK && df_comm_size(d->batch) != d->topo.P) {
        st = DF_ERROR(DF_ERR_INTERNAL, "batch group has %d ranks, expected %d",
                      df_comm_size(d->batch), d->topo.P);
    }
    // tensor parallelism with split batch: every rank holds its CFG half of the whole image;
    // the output is exchanged within the pair {i, i + P} (distrifuser's split_group)
    if (st == DF_OK && p->parallelism == DF_PAR_TENSOR && d->topo.P > 1 && d->topo.n_groups == 2)
        st = df_comm_split(d->world, d->topo.patch, d->topo.rank, &d->split);
    if (st == DF_OK) {
        int P = d->topo.P, N = d->topo.N;
        d->rdeep = calloc((size_t)P, sizeof(int));
        d->cdeep = calloc((size_t)P, sizeof(int));
        d->rstart = calloc((size_t)P + 1, sizeof(int));
        d->cstart = calloc((size_t)P + 1, sizeof(int));
        d->gcnt = calloc((size_t)N, sizeof(int));
        d->gdsp = calloc((size_t)N, sizeof(int));
        if (!d->rdeep || !d->cdeep || !d->rstart || !d->cstart || !d->gcnt || !d->gdsp)
            st = DF_ERROR(DF_ERR_NOMEM, "out of memory");
    }
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
    free(d->rdeep);
    free(d->cdeep);
    free(d->rstart);
    free(d->cstart);
    free(d->gcnt);
    free(d->gdsp);
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

static const double *weights_of(const df_dist *d) {
    return d->prm.n_band_weights > 0 ? d->prm.band_weights : NULL;
}

static df_status make_patch(df_dist *d) {
    df_patch_destroy(d->patch);
    d->patch = NULL;
    if (!uses_patch_ctx(d)) return DF_OK;
    DF_TRY(df_patch_create(d->batch, &d->prm, d->rdeep, d->n_down, &d->patch));
    if (d->trace_steps) DF_TRY(df_patch_trace_enable(d->patch, d->trace_steps));
    return DF_OK;
}

static df_status plan_buffers(df_dist *d, const df_dist_model *m, int H, int W) {
    int P = d->topo.P;
    d->H = H;
    d->W = W;
    d->cin = m->in_channels;
    d->cout = m->out_channels;
    d->n_down = m->n_down;
    size_t B = (size_t)d->topo.B, px = (size_t)H * W;
    df_tp_destroy(d->tp);
    d->tp = NULL;
    if (uses_tp_ctx(d)) { // whole image on every rank; the pair gather with split batch
        DF_TRY(ensure(&d->ys, &d->ys_n, B * px * (size_t)d->cout));
        DF_TRY(ensure(&d->gb, &d->gb_n, (size_t)d->topo.n_groups * B * px * (size_t)d->cout));
        return df_tp_create(d->batch, &d->tp);
    }
    // band plan (bands.h); a band never exceeds the image, the gathered blocks tile the batch
    if (P > 1) {
        df_split_scheme sc = d->prm.split_scheme;
        int naive = d->prm.parallelism == DF_PAR_NAIVE_PATCH;
        if (!naive || sc != DF_SPLIT_COL) {
            DF_TRY(df_topo_bands(H, m->n_down, P, weights_of(d), d->rdeep));
            df_bands_starts(d->rdeep, P, 1 << m->n_down, d->rstart);
        }
        if (naive && sc != DF_SPLIT_ROW) {
            DF_TRY(df_topo_bands(W, m->n_down, P, weights_of(d), d->cdeep));
            df_bands_starts(d->cdeep, P, 1 << m->n_down, d->cstart);
        }
    }
    d->bands_rows_last = !(d->prm.parallelism == DF_PAR_NAIVE_PATCH &&
                           d->prm.split_scheme == DF_SPLIT_COL);
    DF_TRY(ensure(&d->xs, &d->xs_n, B * px * (size_t)d->cin));
    DF_TRY(ensure(&d->ys, &d->ys_n, B * px * (size_t)d->cout));
    DF_TRY(ensure(&d->gb, &d->gb_n, (size_t)d->prm.n_images * px * (size_t)d->cout));
    return make_patch(d);
}

df_status df_dist_plan(df_dist *d, const df_dist_model *m, int H, int W) {
    DF_FAIL_IF(!m || !m->forward, DF_ERR_ARG, "no model");
    DF_FAIL_IF(m->in_channels < 1 || m->out_channels < 1, DF_ERR_ARG, "bad model channels");
    int P = d->topo.P, N = d->topo.N;
    int sb = d->prm.split_batch || d->topo.split_fallback, ni = d->prm.n_images;
    if (d->prm.parallelism == DF_PAR_NAIVE_PATCH && P > 1) {
        df_split_scheme s = d->prm.split_scheme;
        if (s != DF_SPLIT_COL) DF_TRY(df_topo_check_ranks(N, sb, ni, m->n_down, H, W, 0, 8));
        if (s != DF_SPLIT_ROW) DF_TRY(df_topo_check_ranks(N, sb, ni, m->n_down, H, W, 1, 8));
    } else if (P > 1 && d->prm.parallelism != DF_PAR_TENSOR) { // tensor: whole image, any size
        DF_TRY(df_topo_check_ranks(N, sb, ni, m->n_down, H, W, 0, 8));
    }
    if (d->planned && (H != d->H || W != d->W || m->in_channels != d->cin ||
                       m->out_channels != d->cout || m->n_down != d->n_down)) {
        // new size: drop the old plan
        df_patch_destroy(d->patch);
        d->patch = NULL;
        d->planned = 0;
        d->auto_done = 0;
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
    t->bytes_halo += s->bytes_halo;
    t->bytes_kv += s->bytes_kv;
    t->bytes_gn += s->bytes_gn;
    t->bytes_tp += s->bytes_tp;
    t->bytes_output += s->bytes_output;
    t->step = s->step;
}

// --band-weights auto: after the first (synchronous) step, the bands are re-planned once
// from the measured per-rank speeds (see dist.h). Collective (every rank, same step).
static df_status auto_replan(df_dist *d, int step, double t_compute) {
    if (!d->prm.band_weights_auto || d->auto_done || !uses_patch_ctx(d)) return DF_OK;
    // Re-plan after the first step of the plan (step 0, the planning forward: synchronous
    // whatever the warm-up), timed alone: its model compute time per rank, the exchange waits
    // excluded. The next step is the new plan's planning forward (synchronous: a warm-up step
    // when W >= 1, one extra synchronous step when W = 0), so only step 0 runs on the old bands.
    double mine = t_compute;
    d->auto_done = 1;
    const df_topo *tp = &d->topo;
    int N = tp->N, P = tp->P;
    double *all = calloc((size_t)N, sizeof(double));
    double *w = calloc((size_t)P, sizeof(double));
    int *nd = calloc((size_t)P, sizeof(int));
    df_status st = all && w && nd ? DF_OK : DF_ERROR(DF_ERR_NOMEM, "out of memory");
    if (st == DF_OK) st = df_comm_allgather(d->world, &mine, all, sizeof(double));
    if (st == DF_OK) {
        // a patch index's time is the slowest of its groups; speed = rows / time
        for (int r = 0; r < N; r++) {
            df_topo o;
            if (df_topo_compute(N, r, d->prm.split_batch, d->prm.n_images, &o) != DF_OK) continue;
            if (all[r] > w[o.patch]) w[o.patch] = all[r];
        }
        int ok = 1;
        char sp[512] = "";
        size_t o = 0;
        double tot = 0;
        for (int i = 0; i < P; i++) {
            if (!(w[i] > 0)) {
                ok = 0;
                continue;
            }
            int n = snprintf(sp + o, sizeof sp - o, "%s%.3f s for %d rows", i ? ", " : "", w[i],
                             d->rdeep[i]);
            if (n > 0 && (size_t)n < sizeof sp - o) o += (size_t)n;
            w[i] = d->rdeep[i] / w[i];
            tot += w[i];
        }
        if (ok && tot > 0) // total work / total speed: the step compute of perfect balance
            snprintf(sp + o, sizeof sp - o, "; ideal %.3f s per step",
                     (double)(d->H >> d->n_down) / tot);
        if (ok) st = df_bands_rows(d->H >> d->n_down, P, w, nd);
        if (ok && st == DF_OK && memcmp(nd, d->rdeep, (size_t)P * sizeof(int)) != 0) {
            memcpy(d->rdeep, nd, (size_t)P * sizeof(int));
            df_bands_starts(d->rdeep, P, 1 << d->n_down, d->rstart);
            st = make_patch(d); // the next step is the new plan's (synchronous) planning step
            if (tp->rank == 0) {
                char b[512];
                df_dist_band_plan_str(d, b, sizeof b);
                df_log(DF_LOG_INFO, "band weights auto: re-planned after step %d from the "
                                    "warm-up speeds (%s); %s", step, sp, b);
            }
        } else if (tp->rank == 0 && ok && st == DF_OK) {
            df_log(DF_LOG_INFO, "band weights auto: the measured speeds (%s) keep the bands",
                   sp);
        }
    }
    free(all);
    free(w);
    free(nd);
    return st;
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
    d->bands_rows_last = rows;
    const int *bst = rows ? d->rstart : d->cstart; // band starts (latent rows or columns)
    int p = tp->patch;
    int b0 = P > 1 ? bst[p] : 0, b1 = P > 1 ? bst[p + 1] : (rows ? H : W);
    int hs = rows ? b1 - b0 : H, ws = rows ? W : b1 - b0;

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
        s.bytes_tp = ts.bytes_sent + ts.bytes_recv;
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
            s.bytes_output = 2 * s.bytes_gather;
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
            cut(d->xs, x_mine, B, H, W, Cin, b0, b1, 0, W);
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
        s.bytes_halo = xs.kind_bytes[DF_XKIND_CONV];
        s.bytes_kv = xs.kind_bytes[DF_XKIND_ATTN];
        s.bytes_gn = xs.kind_bytes[DF_XKIND_GN];
        s.n_collectives = xs.n_collectives;
        s.n_waits_blocked = xs.n_waits_blocked;
    } else {
        // single rank per image or naive patch: the sub-image is a whole image for the model
        df_pctx ctx;
        const float *xin = x_mine;
        if (P > 1) {
            if (rows) cut(d->xs, x_mine, B, H, W, Cin, b0, b1, 0, W);
            else cut(d->xs, x_mine, B, H, W, Cin, 0, H, b0, b1);
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
        // every rank's block: its images x its band (variable size with uneven bands)
        int N = tp->N, even = 1;
        size_t off = 0, others = 0;
        for (int r = 0; r < N; r++) {
            df_topo o;
            DF_TRY(df_topo_compute(N, r, d->prm.split_batch, d->prm.n_images, &o));
            int len = P > 1 ? bst[o.patch + 1] - bst[o.patch] : (rows ? H : W);
            size_t n = (size_t)o.B * len * (rows ? W : H) * Cout * sizeof(float);
            DF_FAIL_IF(n > 0x7fffffff || off > 0x7fffffff, DF_ERR_ARG,
                       "output block of %zu bytes too large for the gather", n);
            d->gcnt[r] = (int)n;
            d->gdsp[r] = (int)off;
            off += n;
            if (r != tp->rank) others += n;
            if (d->gcnt[r] != d->gcnt[0]) even = 0;
        }
        double tg = df_time_s();
        if (even) DF_TRY(df_comm_allgather(d->world, d->ys, d->gb, blk * sizeof(float)));
        else DF_TRY(df_comm_allgatherv(d->world, d->ys, d->gb, d->gcnt, d->gdsp));
        s.t_gather = df_time_s() - tg;
        s.bytes_gather = others;
        s.bytes_output = 2 * others;
        for (int r = 0; r < N; r++) {
            df_topo o;
            DF_TRY(df_topo_compute(N, r, d->prm.split_batch, d->prm.n_images, &o));
            float *dst = eps_full + (size_t)o.img0 * H * W * Cout;
            const float *src = (const float *)((const char *)d->gb + d->gdsp[r]);
            int r0 = P > 1 ? bst[o.patch] : 0, r1 = P > 1 ? bst[o.patch + 1] : (rows ? H : W);
            if (rows) paste(dst, src, o.B, H, W, Cout, r0, r1, 0, W);
            else paste(dst, src, o.B, H, W, Cout, 0, H, r0, r1);
        }
    }
    s.t_total = df_time_s() - t0;
    d->last = s;
    add_stats(&d->total, &s);
    // every rank's own step profile at debug level (-v; df_log prints rank 0 only): the per-rank
    // speeds behind --band-weights and the step kinds
    if (df_log_get_level() >= DF_LOG_DEBUG) {
        struct rusage ru;
        long minf = 0, majf = 0;
        double ut = 0, st_ = 0;
        if (getrusage(RUSAGE_SELF, &ru) == 0) {
            double u = ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec;
            double k = ru.ru_stime.tv_sec + 1e-6 * ru.ru_stime.tv_usec;
            minf = ru.ru_minflt - d->dbg_minflt;
            majf = ru.ru_majflt - d->dbg_majflt;
            ut = u - d->dbg_utime;
            st_ = k - d->dbg_stime;
            d->dbg_minflt = ru.ru_minflt;
            d->dbg_majflt = ru.ru_majflt;
            d->dbg_utime = u;
            d->dbg_stime = k;
        }
        fprintf(stderr,
                "[r%d/%d] dist step %d (%s): %d rows, total %.3f s, compute %.3f s, wait %.3f s, "
                "progress %.3f s, gather %.3f s; since the last step: CPU %.3f s user %.3f s "
                "system, page faults %ld minor %ld major; peak RSS %.0f MiB\n",
                tp->rank, tp->N, step, s.sync ? "sync" : "async", rows ? hs : ws, s.t_total,
                s.t_compute, s.t_wait, s.t_progress, s.t_gather, ut, st_, minf, majf,
                df_peak_rss_mb());
    }
    DF_TRY(auto_replan(d, step, s.t_compute));
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
    return df_xchg_async_bytes(df_patch_xchg(d->patch));
}

int df_dist_bands(const df_dist *d, int *deep_rows) {
    int P = d->topo.P;
    if (P <= 1 || !d->planned || d->prm.parallelism == DF_PAR_TENSOR) return 0;
    const int *src = d->prm.parallelism == DF_PAR_NAIVE_PATCH && !d->bands_rows_last ? d->cdeep
                                                                                      : d->rdeep;
    if (deep_rows) memcpy(deep_rows, src, (size_t)P * sizeof(int));
    return P;
}

// "a/b/c" of v[0..n) << shift into buf at *o (more than 16 values: runs as "a(xk)").
static void list_ints(char *buf, size_t cap, size_t *o, const int *v, int n, int shift) {
    for (int i = 0; i < n && *o < cap;) {
        int k = 1;
        while (i + k < n && v[i + k] == v[i]) k++;
        int w = snprintf(buf + *o, cap - *o, "%s%d", i ? "/" : "", v[i] << shift);
        if (w > 0) *o += (size_t)w;
        if (n > 16 && k > 2 && *o < cap) {
            w = snprintf(buf + *o, cap - *o, "(x%d)", k);
            if (w > 0) *o += (size_t)w;
            i += k;
        } else {
            i++;
        }
    }
}

int df_dist_band_plan_str(const df_dist *d, char *buf, size_t cap) {
    if (cap == 0) return 0;
    buf[0] = 0;
    int P = d->topo.P;
    int *v = P > 0 ? malloc((size_t)P * sizeof(int)) : NULL;
    if (!v) return 0;
    int n = df_dist_bands(d, v);
    if (n == 0) {
        snprintf(buf, cap, "no bands (one rank per image or tensor parallelism)");
        free(v);
        return 0;
    }
    int even = df_bands_even(v, n);
    int cols = d->prm.parallelism == DF_PAR_NAIVE_PATCH && !d->bands_rows_last;
    size_t o = 0;
    int w = snprintf(buf, cap, "band plan (%s per rank, %d bands%s):", cols ? "columns" : "rows",
                     n, even ? ", even" : ", uneven");
    if (w > 0) o = (size_t)w;
    for (int l = 0; l <= d->n_down && o < cap; l++) {
        int len = (cols ? d->W : d->H) >> l;
        w = snprintf(buf + o, cap - o, "%s level %d (%d): ", l ? ";" : "", l, len);
        if (w > 0) o += (size_t)w;
        list_ints(buf, cap, &o, v, n, d->n_down - l);
    }
    free(v);
    return !even;
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
