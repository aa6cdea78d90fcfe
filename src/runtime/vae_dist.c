// MPI side of the patch-parallel VAE decode (see vae_dist.h).
#include "runtime/vae_dist.h"

#include "runtime/comm.h"
#include "runtime/comm_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

typedef struct vd_ctx {
    MPI_Comm comm;
    int rank, size;
    double t_comm; // seconds inside the band ops
    double *gbuf;  // [size][cap] all-gathered GroupNorm sums
    size_t gcap;
} vd_ctx;

static df_status vd_fail(const vd_ctx *c, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    return DF_ERROR(DF_ERR_COMM, "VAE decode: %s failed on rank %d/%d: %s (MPI error %d)", what,
                    c->rank, c->size, len ? msg : "unknown error", rc);
}

// Sum over the ranks, added in rank order on every rank (bitwise identical statistics).
static df_status vd_allreduce(void *user, double *buf, size_t n) {
    vd_ctx *c = user;
    const double t0 = df_time_s();
    if (n > c->gcap) {
        double *g = realloc(c->gbuf, (size_t)c->size * n * sizeof(double));
        DF_FAIL_IF(!g, DF_ERR_NOMEM, "VAE decode: GroupNorm gather buffer");
        c->gbuf = g;
        c->gcap = n;
    }
    int rc = MPI_Allgather(buf, (int)n, MPI_DOUBLE, c->gbuf, (int)n, MPI_DOUBLE, c->comm);
    if (rc != MPI_SUCCESS) return vd_fail(c, rc, "MPI_Allgather (GroupNorm sums)");
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int r = 0; r < c->size; r++) s += c->gbuf[(size_t)r * n + i];
        buf[i] = s;
    }
    c->t_comm += df_time_s() - t0;
    return DF_OK;
}

static df_status vd_halo(void *user, const float *first, const float *last, float *top,
                         float *bot, size_t floats) {
    vd_ctx *c = user;
    DF_FAIL_IF(floats > INT_MAX, DF_ERR_UNSUPPORTED, "VAE decode: halo row of %zu floats",
               floats);
    const double t0 = df_time_s();
    MPI_Request rq[4];
    int nr = 0, rc = MPI_SUCCESS;
    const int n = (int)floats;
    enum { TAG_UP = 701, TAG_DOWN = 702 }; // row travelling to the band above / below
    if (top && rc == MPI_SUCCESS)
        rc = MPI_Irecv(top, n, MPI_FLOAT, c->rank - 1, TAG_DOWN, c->comm, &rq[nr++]);
    if (bot && rc == MPI_SUCCESS)
        rc = MPI_Irecv(bot, n, MPI_FLOAT, c->rank + 1, TAG_UP, c->comm, &rq[nr++]);
    if (c->rank > 0 && rc == MPI_SUCCESS)
        rc = MPI_Isend(first, n, MPI_FLOAT, c->rank - 1, TAG_UP, c->comm, &rq[nr++]);
    if (c->rank < c->size - 1 && rc == MPI_SUCCESS)
        rc = MPI_Isend(last, n, MPI_FLOAT, c->rank + 1, TAG_DOWN, c->comm, &rq[nr++]);
    if (rc == MPI_SUCCESS) rc = MPI_Waitall(nr, rq, MPI_STATUSES_IGNORE);
    c->t_comm += df_time_s() - t0;
    return rc == MPI_SUCCESS ? DF_OK : vd_fail(c, rc, "halo exchange");
}

// counts / displacements (in units of `unit` floats, a contiguous type) of the bands of R rows.
static df_status vd_counts(const vd_ctx *c, int R, size_t row_floats, int *cnt, int *dsp,
                           MPI_Datatype *type) {
    int rc = MPI_Type_contiguous((int)row_floats, MPI_FLOAT, type);
    if (rc == MPI_SUCCESS) rc = MPI_Type_commit(type);
    if (rc != MPI_SUCCESS) return vd_fail(c, rc, "MPI_Type_contiguous");
    for (int j = 0; j < c->size; j++) {
        int r0, r1;
        df_vae_band_split(R, c->size, j, &r0, &r1);
        cnt[j] = r1 - r0;
        dsp[j] = r0;
    }
    return DF_OK;
}

static df_status vd_allgather_rows(void *user, const float *send, float *recv, int R,
                                   size_t row_floats) {
    vd_ctx *c = user;
    DF_FAIL_IF(row_floats > INT_MAX, DF_ERR_UNSUPPORTED, "VAE decode: row of %zu floats",
               row_floats);
    const double t0 = df_time_s();
    int *cnt = malloc(2 * (size_t)c->size * sizeof(int));
    DF_FAIL_IF(!cnt, DF_ERR_NOMEM, "VAE decode: gather counts");
    MPI_Datatype rowt;
    df_status st = vd_counts(c, R, row_floats, cnt, cnt + c->size, &rowt);
    if (st == DF_OK) {
        int rc = MPI_Allgatherv(send, cnt[c->rank], rowt, recv, cnt, cnt + c->size, rowt,
                                c->comm);
        if (rc != MPI_SUCCESS) st = vd_fail(c, rc, "MPI_Allgatherv (attention K/V)");
        MPI_Type_free(&rowt);
    }
    free(cnt);
    c->t_comm += df_time_s() - t0;
    return st;
}

// Agreement on a local failure: returns 1 if any rank has `bad` set.
static df_status vd_any(vd_ctx *c, int bad, int *any) {
    int v = bad != 0;
    int rc = MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, c->comm);
    if (rc != MPI_SUCCESS) return vd_fail(c, rc, "MPI_Allreduce (agreement)");
    *any = v;
    return DF_OK;
}

// The tiled variant: this band's latent rows plus a margin, tiled decode, crop.
static df_status vd_band_tiled(df_vae *m, const float *z, int h, int w,
                               const df_vae_decode_opts *opts, int r0, int r1, float *band) {
    const df_vae_config *cfg = df_vae_get_config(m);
    const int f = df_vae_scale_factor(m), Cl = cfg->latent_channels, Co = cfg->out_channels;
    const int ts = opts->tile_sample_size > 0 ? opts->tile_sample_size : cfg->sample_size;
    const double ov = opts->tile_overlap > 0 ? opts->tile_overlap : 0.25;
    const int tl = ts / f;
    int mg = tl - (int)(tl * (1.0 - ov));
    if (mg < 1) mg = 1;
    const int a = r0 - mg > 0 ? r0 - mg : 0, b = r1 + mg < h ? r1 + mg : h;
    const size_t prow = (size_t)w * f * Co;
    float *tmp = df_malloc((size_t)(b - a) * f * prow * sizeof(float));
    DF_FAIL_IF(!tmp, DF_ERR_NOMEM, "VAE band of %d latent rows", b - a);
    df_vae_decode_opts o = *opts;
    o.dump = NULL;
    df_status st = df_vae_decode(m, z + (size_t)a * w * Cl, 1, b - a, w, tmp, &o);
    if (st == DF_OK)
        memcpy(band, tmp + (size_t)(r0 - a) * f * prow,
               (size_t)(r1 - r0) * f * prow * sizeof(float));
    df_free(tmp);
    return st;
}

df_status df_vae_decode_dist(df_vae *m, df_comm *parent, const float *z, int h, int w,
                             const df_vae_decode_opts *opts, float *img, df_vae_dist_times *t) {
    DF_FAIL_IF(!m || !z, DF_ERR_ARG, "NULL argument");
    const double t_start = df_time_s();
    df_vae_dist_times tt;
    memset(&tt, 0, sizeof tt);
    tt.bands = 1;
    df_vae_decode_opts o;
    if (opts) o = *opts;
    else memset(&o, 0, sizeof o);
    o.dump = NULL;
    const int par_n = !df_mpi_active() ? 1 : parent ? df_comm_size(parent)
                                                    : df_mpi_world_size();
    if (par_n <= 1) {
        DF_FAIL_IF(!img, DF_ERR_NOMEM, "no image buffer");
        tt.tiled = df_vae_decode_tiles(m, h, w, &o);
        df_status st = df_vae_decode(m, z, 1, h, w, img, &o);
        tt.total_s = tt.compute_s = df_time_s() - t_start;
        if (t) *t = tt;
        return st;
    }
    vd_ctx c;
    memset(&c, 0, sizeof c);
    int rc = MPI_Comm_dup(parent ? df_comm_mpi(parent) : MPI_COMM_WORLD, &c.comm);
    if (rc != MPI_SUCCESS) return vd_fail(&c, rc, "MPI_Comm_dup");
    MPI_Comm_rank(c.comm, &c.rank);
    MPI_Comm_size(c.comm, &c.size);
    tt.bands = c.size;
    const df_vae_config *cfg = df_vae_get_config(m);
    const int f = df_vae_scale_factor(m), Co = cfg->out_channels;
    int r0, r1;
    df_vae_band_split(h, c.size, c.rank, &r0, &r1);
    const size_t prow = (size_t)w * f * Co; // floats of one image row

    // tiling: FORCE as the single decode decides it; AUTO by one band's memory
    int tiled = 0;
    if (o.tiling == DF_VAE_TILING_FORCE) {
        tiled = df_vae_decode_tiles(m, h, w, &o);
    } else if (o.tiling == DF_VAE_TILING_AUTO && h >= c.size) {
        const size_t lim = o.mem_limit ? o.mem_limit : DF_VAE_DEFAULT_MEM_LIMIT;
        int big = 0;
        for (int k = 0; k < c.size; k++)
            big |= df_vae_decode_band_bytes(m, h, w, k, c.size) > lim;
        df_vae_decode_opts fo = o;
        fo.tiling = DF_VAE_TILING_FORCE;
        tiled = big && df_vae_decode_tiles(m, h, w, &fo);
        if (tiled) o.tiling = DF_VAE_TILING_FORCE;
    }
    tt.tiled = tiled;

    // fewer latent rows than ranks (possible with tensor parallelism): rank 0 decodes alone
    if (h < c.size) {
        if (c.rank == 0)
            df_log(DF_LOG_INFO, "VAE decode on rank 0 alone: %d latent rows cannot be cut into "
                                "%d bands", h, c.size);
        df_status st = DF_OK;
        if (c.rank == 0) {
            st = img ? df_vae_decode(m, z, 1, h, w, img, &o)
                     : DF_ERROR(DF_ERR_NOMEM, "no image buffer on rank 0");
            tt.tiled = df_vae_decode_tiles(m, h, w, &o);
        }
        tt.bands = 1;
        MPI_Comm_free(&c.comm);
        tt.total_s = tt.compute_s = df_time_s() - t_start;
        if (t) *t = tt;
        return st;
    }

    // local buffers; every rank learns about any failure before the decode communicates
    df_status st = DF_OK;
    if (c.rank == 0 && !img)
        st = DF_ERROR(DF_ERR_NOMEM, "no image buffer on rank 0");
    float *band = NULL;
    if (st == DF_OK && c.rank != 0) {
        band = df_malloc((size_t)(r1 - r0) * f * prow * sizeof(float));
        if (!band) st = DF_ERROR(DF_ERR_NOMEM, "VAE band image (%d rows)", (r1 - r0) * f);
    }
    float *mine = c.rank == 0 ? img : band;
    int any = 0;
    df_status cs = vd_any(&c, st != DF_OK, &any);
    if (st == DF_OK && cs != DF_OK) st = cs;
    if (st == DF_OK && any)
        st = DF_ERROR(DF_ERR_ARG, "VAE decode: another rank failed (see its message)");

    if (st == DF_OK) {
        if (tiled) {
            st = vd_band_tiled(m, z, h, w, &o, r0, r1, mine);
            int bad = 0;
            cs = vd_any(&c, st != DF_OK, &bad);
            if (st == DF_OK && cs != DF_OK) st = cs;
            if (st == DF_OK && bad)
                st = DF_ERROR(DF_ERR_ARG, "VAE decode: another rank failed (see its message)");
        } else {
            df_vae_band_ops ops = {.user = &c, .k = c.rank, .n = c.size,
                                   .allreduce_f64 = vd_allreduce, .halo = vd_halo,
                                   .allgather_rows = vd_allgather_rows};
            st = df_vae_decode_band(m, z, h, w, &ops, mine);
        }
    }
    tt.halo_s = c.t_comm;

    // gather the image rows on rank 0
    if (st == DF_OK) {
        const double tg = df_time_s();
        int *cnt = malloc(2 * (size_t)c.size * sizeof(int));
        MPI_Datatype rowt;
        if (!cnt) st = DF_ERROR(DF_ERR_NOMEM, "gather counts");
        if (st == DF_OK) st = vd_counts(&c, h, (size_t)f * prow, cnt, cnt + c.size, &rowt);
        if (st == DF_OK) {
            rc = MPI_Gatherv(c.rank == 0 ? MPI_IN_PLACE : band, cnt[c.rank], rowt, img, cnt,
                             cnt + c.size, rowt, 0, c.comm);
            if (rc != MPI_SUCCESS) st = vd_fail(&c, rc, "MPI_Gatherv (image rows)");
            MPI_Type_free(&rowt);
        }
        free(cnt);
        tt.gather_s = df_time_s() - tg;
    }
    df_free(band);
    free(c.gbuf);
    MPI_Comm_free(&c.comm);
    tt.total_s = df_time_s() - t_start;
    tt.compute_s = tt.total_s - tt.halo_s - tt.gather_s;
    if (t) *t = tt;
    return st;
}
