// FID statistics (mean / covariance in double), the Frechet distance with the matrix square root
// trace from LAPACK's symmetric eigendecomposition (dsyevd, shipped by Debian's OpenBLAS), the
// statistics file, and the features of a list of images on OpenMP threads.
#include "distrifuse/metrics.h"

#include "core/core.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"

#include <cblas.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

// LAPACK (Fortran ABI; the trailing hidden length of the two character arguments is passed).
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                    double *w, double *work, const int *lwork, int *iwork, const int *liwork,
                    int *info, size_t jobz_len, size_t uplo_len);
extern void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a,
                    const int *lda, const double *vl, const double *vu, const int *il,
                    const int *iu, const double *abstol, int *m, double *w, double *z,
                    const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork,
                    const int *liwork, int *info, size_t jobz_len, size_t range_len,
                    size_t uplo_len);

void df_fid_stats_free(df_fid_stats *s) {
    if (!s) return;
    df_free(s->mu);
    df_free(s->sigma);
    s->mu = s->sigma = NULL;
}

df_status df_fid_stats_from_features(const float *feats, int n, int dim, df_fid_stats *out) {
    memset(out, 0, sizeof *out);
    DF_FAIL_IF(n < 2, DF_ERR_ARG, "FID statistics need at least 2 images, got %d", n);
    DF_FAIL_IF(dim < 1, DF_ERR_ARG, "feature dimension %d", dim);
    double *mu = df_calloc((size_t)dim, sizeof(double));
    double *sg = df_malloc(sizeof(double) * (size_t)dim * dim);
    double *xc = df_malloc(sizeof(double) * (size_t)n * dim);
    if (!mu || !sg || !xc) {
        df_free(mu), df_free(sg), df_free(xc);
        return DF_ERROR(DF_ERR_NOMEM, "FID statistics (%d x %d)", n, dim);
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) mu[j] += feats[(size_t)i * dim + j];
    for (int j = 0; j < dim; j++) mu[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < dim; j++)
            xc[(size_t)i * dim + j] = (double)feats[(size_t)i * dim + j] - mu[j];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, n, 1.0 / (n - 1), xc, dim, 0.0, sg,
                dim);
    for (int i = 0; i < dim; i++)
        for (int j = 0; j < i; j++) sg[(size_t)i * dim + j] = sg[(size_t)j * dim + i];
    df_free(xc);
    out->dim = dim, out->count = n, out->mu = mu, out->sigma = sg;
    return DF_OK;
}

// Eigenvalues (ascending) and eigenvectors of the symmetric d x d matrix a (overwritten: row k of
// the row-major buffer is the eigenvector of w[k]).
static df_status eig_sym(double *a, double *w, int d) {
    int n = d, lwork = -1, liwork = -1, info = 0, iw = 0;
    double wq = 0;
    dsyevd_("V", "U", &n, a, &n, w, &wq, &lwork, &iw, &liwork, &info, 1, 1);
    DF_FAIL_IF(info != 0, DF_ERR_INTERNAL, "dsyevd workspace query failed (info %d)", info);
    lwork = (int)wq + 1, liwork = iw + 1;
    double *work = df_malloc(sizeof(double) * (size_t)lwork);
    int *iwork = df_malloc(sizeof(int) * (size_t)liwork);
    if (!work || !iwork) {
        df_free(work), df_free(iwork);
        return DF_ERROR(DF_ERR_NOMEM, "dsyevd workspace");
    }
    dsyevd_("V", "U", &n, a, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    df_free(work), df_free(iwork);
    DF_FAIL_IF(info != 0, DF_ERR_INTERNAL, "dsyevd failed (info %d): non-finite covariance?",
               info);
    return DF_OK;
}

// The largest k eigenpairs (ascending in w[0..k)) of the symmetric d x d matrix a (destroyed):
// row j of z ([k][d]) is the eigenvector of w[j]. Cheaper than all of them when k << d.
static df_status eig_sym_top(double *a, int d, int k, double *w, double *z) {
    int n = d, il = d - k + 1, iu = d, m = 0, info = 0, lwork = -1, liwork = -1, iwq = 0;
    const double vl = 0, vu = 0, abstol = 0;
    double wq = 0;
    int *isuppz = df_malloc(sizeof(int) * 2 * (size_t)(k > 0 ? k : 1));
    DF_FAIL_IF(!isuppz, DF_ERR_NOMEM, "dsyevr");
    dsyevr_("V", "I", "U", &n, a, &n, &vl, &vu, &il, &iu, &abstol, &m, w, z, &n, isuppz, &wq,
            &lwork, &iwq, &liwork, &info, 1, 1, 1);
    if (info != 0) {
        df_free(isuppz);
        return DF_ERROR(DF_ERR_INTERNAL, "dsyevr workspace query failed (info %d)", info);
    }
    lwork = (int)wq + 1, liwork = iwq + 1;
    double *work = df_malloc(sizeof(double) * (size_t)lwork);
    int *iwork = df_malloc(sizeof(int) * (size_t)liwork);
    if (work && iwork)
        dsyevr_("V", "I", "U", &n, a, &n, &vl, &vu, &il, &iu, &abstol, &m, w, z, &n, isuppz, work,
                &lwork, iwork, &liwork, &info, 1, 1, 1);
    df_free(work), df_free(iwork), df_free(isuppz);
    DF_FAIL_IF(!work || !iwork, DF_ERR_NOMEM, "dsyevr workspace");
    DF_FAIL_IF(info != 0 || m != k, DF_ERR_INTERNAL, "dsyevr failed (info %d, %d of %d values)",
               info, m, k);
    return DF_OK;
}

df_status df_frechet_distance(const df_fid_stats *a, const df_fid_stats *b, double *fid,
                              double *terms) {
    DF_FAIL_IF(!a || !b || !a->mu || !b->mu || !fid, DF_ERR_ARG, "NULL statistics");
    DF_FAIL_IF(a->dim != b->dim, DF_ERR_SHAPE, "statistics of dimension %d and %d", a->dim,
               b->dim);
    const int d = a->dim;
    double mt = 0, tr1 = 0, tr2 = 0;
    for (int i = 0; i < d; i++) {
        const double df = a->mu[i] - b->mu[i];
        mt += df * df;
        tr1 += a->sigma[(size_t)i * d + i];
        tr2 += b->sigma[(size_t)i * d + i];
    }
    for (size_t i = 0; i < (size_t)d * d; i++)
        DF_FAIL_IF(!isfinite(a->sigma[i]) || !isfinite(b->sigma[i]), DF_ERR_ARG,
                   "non-finite covariance entry");
    // sqrt(s1) = V diag(sqrt l) V^T. Eigenvalues below d * eps * max are rounding noise of a
    // singular covariance (rank <= N - 1) and are dropped. tr sqrt(s1 s2) = sum of the square
    // roots of the eigenvalues of U^T s2 U, U = V_r diag(sqrt l_r) (similar to
    // sqrt(s1) s2 sqrt(s1) on the range of s1).
    // A covariance of N images has rank <= N - 1: then only the top N - 1 eigenpairs are needed.
    const int kk = a->count >= 2 && a->count - 1 < d ? (int)(a->count - 1) : d;
    double *v = df_malloc(sizeof(double) * (size_t)d * d);
    double *l = df_malloc(sizeof(double) * (size_t)d);
    DF_FAIL_IF(!v || !l, DF_ERR_NOMEM, "Frechet distance");
    memcpy(v, a->sigma, sizeof(double) * (size_t)d * d);
    df_status st;
    if (kk < d) {
        double *z = df_malloc(sizeof(double) * (size_t)kk * d);
        st = z ? eig_sym_top(v, d, kk, l, z) : DF_ERROR(DF_ERR_NOMEM, "Frechet distance");
        if (st == DF_OK) memcpy(v, z, sizeof(double) * (size_t)kk * d);
        df_free(z);
    } else {
        st = eig_sym(v, l, d);
    }
    if (st != DF_OK) {
        df_free(v), df_free(l);
        return st;
    }
    const double lmax = l[kk - 1] > 0 ? l[kk - 1] : 0;
    const double thr = lmax * d * DBL_EPSILON;
    int r = 0;
    // U^T as [r][d] rows: eigenvector rows scaled
    for (int k = 0; k < kk; k++)
        if (l[k] > thr) {
            const double s = sqrt(l[k]);
            for (int j = 0; j < d; j++) v[(size_t)r * d + j] = v[(size_t)k * d + j] * s;
            r++;
        }
    double trs = 0;
    if (r > 0) {
        double *t = df_malloc(sizeof(double) * (size_t)r * d);
        double *mm = df_malloc(sizeof(double) * (size_t)r * r);
        double *ev = df_malloc(sizeof(double) * (size_t)r);
        if (!t || !mm || !ev) st = DF_ERROR(DF_ERR_NOMEM, "Frechet distance");
        if (st == DF_OK) {
            // T = U^T s2 ([r][d]), M = T U ([r][r])
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, d, d, 1.0, v, d, b->sigma,
                        d, 0.0, t, d);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, d, 1.0, t, d, v, d, 0.0,
                        mm, r);
            for (int i = 0; i < r; i++) // symmetrise the rounding
                for (int j = 0; j < i; j++) {
                    const double s = 0.5 * (mm[(size_t)i * r + j] + mm[(size_t)j * r + i]);
                    mm[(size_t)i * r + j] = mm[(size_t)j * r + i] = s;
                }
            st = eig_sym(mm, ev, r);
        }
        if (st == DF_OK) {
            const double emax = ev[r - 1] > 0 ? ev[r - 1] : 0;
            const double ethr = emax * r * DBL_EPSILON;
            for (int i = 0; i < r; i++)
                if (ev[i] > ethr) trs += sqrt(ev[i]);
        }
        df_free(t), df_free(mm), df_free(ev);
    }
    df_free(v), df_free(l);
    if (st != DF_OK) return st;
    *fid = mt + tr1 + tr2 - 2.0 * trs;
    if (terms) terms[0] = mt, terms[1] = tr1, terms[2] = tr2, terms[3] = trs;
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Statistics file

#define STATS_FORMAT "distrifuse-fid-stats-v1"

df_status df_fid_stats_save(const df_fid_stats *s, const char *path) {
    DF_FAIL_IF(!s || !s->mu || !path, DF_ERR_ARG, "NULL statistics or path");
    df_st_writer *w = NULL;
    DF_TRY(df_st_writer_create(&w));
    const int64_t d1[1] = {s->dim}, d2[2] = {s->dim, s->dim};
    char cnt[32];
    snprintf(cnt, sizeof cnt, "%" PRId64, s->count);
    df_status st = df_st_writer_add(w, "mu", DF_DTYPE_F64, 1, d1, s->mu);
    if (st == DF_OK) st = df_st_writer_add(w, "sigma", DF_DTYPE_F64, 2, d2, s->sigma);
    if (st == DF_OK) st = df_st_writer_meta(w, "format", STATS_FORMAT);
    if (st == DF_OK) st = df_st_writer_meta(w, "count", cnt);
    if (st == DF_OK)
        st = df_st_writer_meta(w, "features", "clean-fid mode clean, FID Inception-v3 pool3");
    if (st == DF_OK) st = df_st_write(w, path);
    df_st_writer_destroy(w);
    return st;
}

static df_status read_f64(const df_st_file *f, const char *name, int ndim, int64_t d,
                          double **out) {
    const df_st_tensor *t = df_st_find(f, name);
    DF_FAIL_IF(!t, DF_ERR_FORMAT, "%s: no tensor '%s' (not a FID statistics file)", df_st_path(f),
               name);
    int ok = t->ndim == ndim && t->shape[0] == d && (ndim == 1 || t->shape[1] == d);
    DF_FAIL_IF(!ok, DF_ERR_SHAPE, "%s: tensor '%s' has the wrong shape", df_st_path(f), name);
    double *p = df_malloc(sizeof(double) * t->numel);
    DF_FAIL_IF(!p, DF_ERR_NOMEM, "statistics");
    if (t->dtype == DF_DTYPE_F64) {
        memcpy(p, t->data, sizeof(double) * t->numel);
    } else if (t->dtype == DF_DTYPE_F32) {
        for (size_t i = 0; i < t->numel; i++) {
            float v;
            memcpy(&v, (const char *)t->data + 4 * i, 4);
            p[i] = v;
        }
    } else {
        df_free(p);
        return DF_ERROR(DF_ERR_FORMAT, "%s: tensor '%s' is %s, expected F64", df_st_path(f), name,
                        df_dtype_name(t->dtype));
    }
    *out = p;
    return DF_OK;
}

df_status df_fid_stats_load(const char *path, df_fid_stats *out) {
    memset(out, 0, sizeof *out);
    df_st_file *f = NULL;
    DF_TRY(df_st_open(path, &f));
    const df_st_tensor *mu = df_st_find(f, "mu");
    df_status st = DF_OK;
    if (!mu || mu->ndim != 1 || mu->shape[0] < 1)
        st = DF_ERROR(DF_ERR_FORMAT, "%s: no 1-D tensor 'mu' (not a FID statistics file)", path);
    if (st == DF_OK) out->dim = (int)mu->shape[0];
    if (st == DF_OK) st = read_f64(f, "mu", 1, out->dim, &out->mu);
    if (st == DF_OK) st = read_f64(f, "sigma", 2, out->dim, &out->sigma);
    const char *c = df_st_metadata(f, "count");
    out->count = c ? strtoll(c, NULL, 10) : 0;
    df_st_close(f);
    if (st != DF_OK) df_fid_stats_free(out);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Features of a file list

df_status df_inception_features_files(const df_inception *m, const df_path_list *files,
                                      float **feats, void (*progress)(void *ctx, int done, int n),
                                      void *ctx) {
    *feats = NULL;
    const int n = files->n;
    float *F = df_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1) * DF_FID_DIM);
    DF_FAIL_IF(!F, DF_ERR_NOMEM, "features of %d images", n);
    const int nt = df_par_threads();
    int done = 0, failed = 0, fail_i = 0;
    df_status fst = DF_OK;
    char msg[1024] = "";
    if (nt > 1 && n >= 2) {
        // one image per thread; the GEMMs inside run single-threaded
        const int saved = df_blas_single_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int i = 0; i < n; i++) {
            int skip; // images after a failed one; the first failure in list order is reported
#pragma omp critical(df_fid_files)
            skip = failed && i > fail_i;
            if (skip) continue;
            uint8_t *rgb = NULL;
            int w = 0, h = 0;
            df_status st = df_metrics_read_image(files->paths[i], &rgb, &w, &h);
            if (st == DF_OK)
                st = df_inception_features_u8(m, rgb, h, w, F + (size_t)i * DF_FID_DIM);
            df_metrics_free(rgb);
#pragma omp critical(df_fid_files)
            {
                if (st != DF_OK && (!failed || i < fail_i)) {
                    failed = 1, fst = st, fail_i = i;
                    snprintf(msg, sizeof msg, "%s", df_last_error());
                }
                done++;
                if (progress && st == DF_OK) progress(ctx, done, n);
            }
        }
        df_blas_single_end(saved);
    } else {
        for (int i = 0; i < n && !failed; i++) {
            uint8_t *rgb = NULL;
            int w = 0, h = 0;
            df_status st = df_metrics_read_image(files->paths[i], &rgb, &w, &h);
            if (st == DF_OK)
                st = df_inception_features_u8(m, rgb, h, w, F + (size_t)i * DF_FID_DIM);
            df_metrics_free(rgb);
            if (st != DF_OK) {
                failed = 1, fst = st;
                snprintf(msg, sizeof msg, "%s", df_last_error());
            }
            if (progress && st == DF_OK) progress(ctx, i + 1, n);
        }
    }
    if (failed) {
        df_free(F);
        return DF_ERROR(fst, "%s", msg);
    }
    *feats = F;
    return DF_OK;
}
