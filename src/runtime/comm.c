// Communication layer: MPI process/communicator helpers and the DistriFusion comm manager.
// See comm.h for the contract; the manager's ordering argument is in the header comment.
#include "runtime/comm.h"
#include "runtime/comm_mpi.h"

#include "core/cpu.h"

#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---------------------------------------------------------------------------------------------
// Process level

static struct {
    int active;          // MPI in use
    int we_initialised;  // df_mpi_init called MPI_Init_thread
    int thread_multiple; // MPI_THREAD_MULTIPLE provided
    int rank, size;
} g_mpi = {0, 0, 0, 0, 1};

static df_status mpi_fail(int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = 0;
    msg[len] = '\0';
    return DF_ERROR(DF_ERR_COMM, "%s failed on rank %d/%d: %s (MPI error %d)", what, g_mpi.rank,
                    g_mpi.size, len ? msg : "unknown error", rc);
}

#define MPI_TRY(call, what)                                                                    \
    do {                                                                                       \
        int mpi_rc_ = (call);                                                                  \
        if (mpi_rc_ != MPI_SUCCESS) return mpi_fail(mpi_rc_, (what));                          \
    } while (0)

df_status df_mpi_init(int *argc, char ***argv, int thread_multiple, int launched) {
    if (g_mpi.active) return DF_OK;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    DF_FAIL_IF(finalized, DF_ERR_COMM, "MPI was already finalised in this process");
    if (!inited) {
        if (!launched) { // plain process: one rank, no MPI at all
            g_mpi.rank = 0;
            g_mpi.size = 1;
            return DF_OK;
        }
        int provided = 0;
        int required = thread_multiple ? MPI_THREAD_MULTIPLE : MPI_THREAD_FUNNELED;
        int rc = MPI_Init_thread(argc, argv, required, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Init_thread");
        g_mpi.we_initialised = 1;
        g_mpi.thread_multiple = provided >= MPI_THREAD_MULTIPLE;
        if (provided < MPI_THREAD_FUNNELED) {
            df_log(DF_LOG_WARN, "MPI provides thread level %d < MPI_THREAD_FUNNELED; OpenMP "
                                "threads never call MPI, continuing",
                   provided);
        }
    } else {
        int provided = 0;
        MPI_Query_thread(&provided);
        g_mpi.thread_multiple = provided >= MPI_THREAD_MULTIPLE;
    }
    g_mpi.active = 1;
    MPI_TRY(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    MPI_TRY(MPI_Comm_rank(MPI_COMM_WORLD, &g_mpi.rank), "MPI_Comm_rank");
    MPI_TRY(MPI_Comm_size(MPI_COMM_WORLD, &g_mpi.size), "MPI_Comm_size");
    df_log_set_rank(g_mpi.rank, g_mpi.size);
    // every rank runs the lowest kernel variant any rank supports (core/cpu.h)
    int kv = (int)df_cpu_best();
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &kv, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
    df_cpu_limit((df_cpu_variant)kv);
    // and --compute bf16 only where every rank has AVX512_BF16 (kernels/gemm_bf16.h)
    int bf = df_cpu_has_bf16();
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, &bf, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
    df_cpu_limit_bf16(bf);
    return DF_OK;
}

int df_mpi_active(void) { return g_mpi.active; }
int df_mpi_thread_multiple(void) { return g_mpi.thread_multiple; }
int df_mpi_world_rank(void) { return g_mpi.rank; }
int df_mpi_world_size(void) { return g_mpi.size; }

df_status df_mpi_finalize(void) {
    if (!g_mpi.active) return DF_OK;
    g_mpi.active = 0;
    if (!g_mpi.we_initialised) return DF_OK;
    g_mpi.we_initialised = 0;
    // Every rank gets here together (dist.h's exit protocol), all communication completed: the
    // barrier makes every message received before any rank tears its transport down (MPICH
    // 4.0.2/UCX closes its endpoints before its own barrier; scripts/mpich-ucx-close.c).
    MPI_TRY(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier (before MPI_Finalize)");
    MPI_TRY(MPI_Finalize(), "MPI_Finalize");
    return DF_OK;
}

void df_mpi_abort(int code) {
    if (!g_mpi.active) return;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
}

// ---------------------------------------------------------------------------------------------
// Datatypes: n contiguous bytes (n may exceed INT_MAX: 1 MiB blocks + remainder).

static df_status make_bytes_type(size_t n, MPI_Datatype *out) {
    const size_t block = (size_t)1 << 20;
    if (n <= (size_t)0x7fffffff) {
        MPI_TRY(MPI_Type_contiguous((int)n, MPI_BYTE, out), "MPI_Type_contiguous");
        return DF_OK;
    }
    size_t q = n / block, r = n % block;
    DF_FAIL_IF(q > 0x7fffffff, DF_ERR_ARG, "message of %zu bytes is too large", n);
    MPI_Datatype blk, big;
    MPI_TRY(MPI_Type_contiguous((int)block, MPI_BYTE, &blk), "MPI_Type_contiguous");
    MPI_TRY(MPI_Type_contiguous((int)q, blk, &big), "MPI_Type_contiguous");
    if (r == 0) {
        *out = big;
    } else {
        int lens[2] = {1, (int)r};
        MPI_Aint disp[2] = {0, (MPI_Aint)(q * block)};
        MPI_Datatype types[2] = {big, MPI_BYTE};
        MPI_TRY(MPI_Type_create_struct(2, lens, disp, types, out), "MPI_Type_create_struct");
        MPI_Type_free(&big);
    }
    MPI_Type_free(&blk);
    return DF_OK;
}

// n bytes, extent `stride` bytes (one element per slot of a slot-major buffer), committed.
static df_status make_slot_type(size_t n, size_t stride, MPI_Datatype *out) {
    MPI_Datatype t;
    DF_TRY(make_bytes_type(n, &t));
    MPI_TRY(MPI_Type_create_resized(t, 0, (MPI_Aint)stride, out), "MPI_Type_create_resized");
    MPI_Type_free(&t);
    MPI_TRY(MPI_Type_commit(out), "MPI_Type_commit");
    return DF_OK;
}

// ---------------------------------------------------------------------------------------------
// Communicators

struct df_comm {
    MPI_Comm comm; // MPI_COMM_NULL when MPI is inactive
    int rank, size;
};

df_status df_comm_world(df_comm **out) {
    *out = NULL;
    df_comm *c = calloc(1, sizeof *c);
    DF_FAIL_IF(!c, DF_ERR_NOMEM, "out of memory");
    c->comm = MPI_COMM_NULL;
    c->rank = 0;
    c->size = 1;
    if (g_mpi.active) {
        int rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
        if (rc != MPI_SUCCESS) {
            free(c);
            return mpi_fail(rc, "MPI_Comm_dup");
        }
        MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
        MPI_Comm_rank(c->comm, &c->rank);
        MPI_Comm_size(c->comm, &c->size);
    }
    *out = c;
    return DF_OK;
}

df_status df_comm_split(const df_comm *parent, int color, int key, df_comm **out) {
    *out = NULL;
    df_comm *c = calloc(1, sizeof *c);
    DF_FAIL_IF(!c, DF_ERR_NOMEM, "out of memory");
    c->comm = MPI_COMM_NULL;
    c->rank = 0;
    c->size = 1;
    if (parent->comm != MPI_COMM_NULL) {
        int rc = MPI_Comm_split(parent->comm, color, key, &c->comm);
        if (rc != MPI_SUCCESS) {
            free(c);
            return mpi_fail(rc, "MPI_Comm_split");
        }
        MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
        MPI_Comm_rank(c->comm, &c->rank);
        MPI_Comm_size(c->comm, &c->size);
    }
    *out = c;
    return DF_OK;
}

void df_comm_destroy(df_comm *c) {
    if (!c) return;
    if (c->comm != MPI_COMM_NULL && g_mpi.active) MPI_Comm_free(&c->comm);
    free(c);
}

MPI_Comm df_comm_mpi(const df_comm *c) { return c ? c->comm : MPI_COMM_NULL; }

int df_comm_rank(const df_comm *c) { return c->rank; }
int df_comm_size(const df_comm *c) { return c->size; }

df_status df_comm_barrier(df_comm *c) {
    if (c->comm == MPI_COMM_NULL) return DF_OK;
    MPI_TRY(MPI_Barrier(c->comm), "MPI_Barrier");
    return DF_OK;
}

df_status df_comm_allgather(df_comm *c, const void *send, void *recv, size_t bytes) {
    unsigned char *r = recv;
    if (c->comm == MPI_COMM_NULL) {
        if (send != recv) memmove(r, send, bytes);
        return DF_OK;
    }
    unsigned char *mine = r + (size_t)c->rank * bytes;
    if ((const unsigned char *)send != mine) memmove(mine, send, bytes);
    MPI_Datatype t;
    DF_TRY(make_slot_type(bytes, bytes, &t));
    int rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r, 1, t, c->comm);
    MPI_Type_free(&t);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allgather");
    return DF_OK;
}

df_status df_comm_allgatherv(df_comm *c, const void *send, void *recv, const int *bytes,
                             const int *displ) {
    unsigned char *r = recv;
    if (c->comm == MPI_COMM_NULL) {
        memmove(r + displ[0], send, (size_t)bytes[0]);
        return DF_OK;
    }
    MPI_TRY(MPI_Allgatherv(send, bytes[c->rank], MPI_BYTE, r, bytes, displ, MPI_BYTE, c->comm),
            "MPI_Allgatherv");
    return DF_OK;
}

static df_status allreduce(df_comm *c, void *buf, size_t n, MPI_Datatype t, MPI_Op op,
                           const char *what) {
    if (c->comm == MPI_COMM_NULL || n == 0) return DF_OK;
    DF_FAIL_IF(n > 0x7fffffff, DF_ERR_ARG, "%s: %zu elements is too many", what, n);
    MPI_TRY(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, t, op, c->comm), what);
    return DF_OK;
}

df_status df_comm_allreduce_sum_f64(df_comm *c, double *buf, size_t n) {
    return allreduce(c, buf, n, MPI_DOUBLE, MPI_SUM, "MPI_Allreduce(sum f64)");
}
df_status df_comm_allreduce_sum_f32(df_comm *c, float *buf, size_t n) {
    return allreduce(c, buf, n, MPI_FLOAT, MPI_SUM, "MPI_Allreduce(sum f32)");
}
df_status df_comm_allreduce_max_i32(df_comm *c, int *buf, size_t n) {
    return allreduce(c, buf, n, MPI_INT, MPI_MAX, "MPI_Allreduce(max i32)");
}

df_status df_comm_bcast(df_comm *c, void *buf, size_t bytes, int root) {
    if (c->comm == MPI_COMM_NULL || bytes == 0) return DF_OK;
    MPI_Datatype t;
    DF_TRY(make_bytes_type(bytes, &t));
    MPI_Type_commit(&t);
    int rc = MPI_Bcast(buf, 1, t, root, c->comm);
    MPI_Type_free(&t);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Bcast");
    return DF_OK;
}

df_status df_comm_agree(df_comm *c, df_status local) {
    int v = (int)local;
    df_status st = df_comm_allreduce_max_i32(c, &v, 1);
    if (st != DF_OK) return st;
    return (df_status)v;
}

// ---------------------------------------------------------------------------------------------
// dtype / progress names

const char *df_comm_dtype_name(df_comm_dtype t) {
    switch (t) {
    case DF_COMM_F32: return "f32";
    case DF_COMM_F16: return "f16";
    case DF_COMM_F64: return "f64";
    default: return "?";
    }
}

int df_comm_dtype_parse(const char *s, df_comm_dtype *out) {
    for (int i = 0; i < DF_COMM_DTYPE_COUNT; i++) {
        if (strcmp(s, df_comm_dtype_name((df_comm_dtype)i)) == 0) {
            *out = (df_comm_dtype)i;
            return 1;
        }
    }
    return 0;
}

size_t df_comm_dtype_size(df_comm_dtype t) {
    switch (t) {
    case DF_COMM_F16: return 2;
    case DF_COMM_F64: return 8;
    default: return 4;
    }
}

const char *df_progress_name(df_progress p) {
    switch (p) {
    case DF_PROGRESS_NONE: return "none";
    case DF_PROGRESS_TEST: return "test";
    case DF_PROGRESS_THREAD: return "thread";
    default: return "?";
    }
}

int df_progress_parse(const char *s, df_progress *out) {
    for (int i = 0; i < DF_PROGRESS_COUNT; i++) {
        if (strcmp(s, df_progress_name((df_progress)i)) == 0) {
            *out = (df_progress)i;
            return 1;
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Communication manager

typedef struct xentry {
    char label[112];
    df_xkind kind;
    df_comm_dtype dtype;
    size_t n, bytes, off;    // elements, bytes, byte offset inside a slot
    unsigned char *tmp;      // planning storage [P][bytes] (until commit)
    MPI_Datatype sync_type;  // bytes, extent slot_bytes (lazily, after commit)
    int group;               // first entry of the launch that last covered it, -1 none
    // halo entries (neighbour exchange): bytes = 2 x hbytes (logical), no place in the buffer
    int halo;
    size_t hbytes;           // one part
    unsigned char *hbuf;     // [4][hbytes]: send top, send bottom, recv from above, from below
} xentry;

typedef struct xgroup {      // indexed by its first entry
    int last;                // last entry of the launch
    int active;              // in flight
    MPI_Datatype type;       // cached datatype for [first, last]
    int type_last;           // `last` the cached type was built for, -1 none
} xgroup;

struct df_xchg {
    df_comm *comm;
    int P, me, checkpoint;
    df_progress progress;
    int mpi;                 // comm has an MPI communicator

    xentry *e;
    int n, cap;
    int committed;
    size_t slot_bytes, slot_elems;
    unsigned char *buf;      // [P][slot_bytes]

    xgroup *g;               // [n] after commit
    int q_first, q_last;     // queued range, q_first = -1 when empty
    // in-flight launches (compact)
    MPI_Request *act_req;    // [n]
    int *act_first;          // [n]
    int n_act;
    int *tmp_idx;            // [n] scratch for Testsome
    MPI_Status *tmp_st;
    // halo entries: requests [n][4] (send up, send down, recv up, recv down), MPI_REQUEST_NULL
    // when idle; h_live = requests not yet completed
    MPI_Request *hreq;
    int *htmp;               // [4n] scratch for Testsome
    int h_live;
    size_t gslot_bytes;      // gathered part of a slot

    df_xchg_stats st;

    // progress thread
    pthread_t thr;
    int thr_on, thr_stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

#define XLOCK(x)                                                                               \
    do {                                                                                       \
        if ((x)->thr_on) pthread_mutex_lock(&(x)->mu);                                         \
    } while (0)
#define XUNLOCK(x)                                                                             \
    do {                                                                                       \
        if ((x)->thr_on) pthread_mutex_unlock(&(x)->mu);                                       \
    } while (0)

static void *progress_main(void *arg) {
    df_xchg *x = arg;
    pthread_mutex_lock(&x->mu);
    while (!x->thr_stop) {
        if (x->n_act == 0 && x->h_live == 0) {
            pthread_cond_wait(&x->cv, &x->mu);
            continue;
        }
        int outc = 0;
        if (x->n_act > 0)
            MPI_Testsome(x->n_act, x->act_req, &outc, x->tmp_idx, MPI_STATUSES_IGNORE);
        if (x->h_live > 0) {
            outc = 0;
            MPI_Testsome(4 * x->n, x->hreq, &outc, x->htmp, MPI_STATUSES_IGNORE);
            if (outc != MPI_UNDEFINED) x->h_live -= outc;
        }
        // completed requests are set to MPI_REQUEST_NULL; the main thread compacts the list
        pthread_mutex_unlock(&x->mu);
        struct timespec ts = {0, 20000}; // 20 us between polls
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

df_status df_xchg_create(df_comm *comm, int checkpoint, df_progress progress, df_xchg **out) {
    *out = NULL;
    DF_FAIL_IF(checkpoint < 1, DF_ERR_ARG, "comm_checkpoint must be >= 1 (got %d)", checkpoint);
    DF_FAIL_IF((int)progress < 0 || progress >= DF_PROGRESS_COUNT, DF_ERR_ARG,
               "bad progress strategy %d", (int)progress);
    if (progress == DF_PROGRESS_THREAD && comm->comm != MPI_COMM_NULL && !g_mpi.thread_multiple)
        return DF_ERROR(DF_ERR_UNSUPPORTED,
                        "progress=thread needs MPI_THREAD_MULTIPLE, which MPI did not provide "
                        "(initialise with thread_multiple=1)");
    df_xchg *x = calloc(1, sizeof *x);
    DF_FAIL_IF(!x, DF_ERR_NOMEM, "out of memory");
    x->comm = comm;
    x->P = comm->size;
    x->me = comm->rank;
    x->checkpoint = checkpoint;
    x->progress = progress;
    x->mpi = comm->comm != MPI_COMM_NULL;
    x->q_first = -1;
    *out = x;
    return DF_OK;
}

static void free_types(df_xchg *x) {
    if (!g_mpi.active) return;
    for (int i = 0; i < x->n; i++) {
        if (x->e[i].sync_type != MPI_DATATYPE_NULL) MPI_Type_free(&x->e[i].sync_type);
        if (x->g && x->g[i].type != MPI_DATATYPE_NULL) MPI_Type_free(&x->g[i].type);
    }
}

void df_xchg_destroy(df_xchg *x) {
    if (!x) return;
    if (x->mpi && g_mpi.active) {
        (void)df_xchg_quiesce(x);
    }
    if (x->thr_on) {
        pthread_mutex_lock(&x->mu);
        x->thr_stop = 1;
        pthread_cond_signal(&x->cv);
        pthread_mutex_unlock(&x->mu);
        pthread_join(x->thr, NULL);
        pthread_mutex_destroy(&x->mu);
        pthread_cond_destroy(&x->cv);
        x->thr_on = 0;
    }
    free_types(x);
    for (int i = 0; i < x->n; i++) {
        df_free(x->e[i].tmp);
        df_free(x->e[i].hbuf);
    }
    free(x->e);
    free(x->hreq);
    free(x->htmp);
    free(x->g);
    free(x->act_req);
    free(x->act_first);
    free(x->tmp_idx);
    free(x->tmp_st);
    df_free(x->buf);
    free(x);
}

// A new zeroed entry at the end of the table (not yet counted in x->n), named `label`.
static df_status new_entry(df_xchg *x, const char *label, xentry **out) {
    DF_FAIL_IF(x->committed, DF_ERR_INTERNAL,
               "register '%s' after the comm buffer was committed (the layer sequence changed "
               "after the planning forward)",
               label);
    if (x->n == x->cap) {
        int nc = x->cap ? 2 * x->cap : 64;
        xentry *ne = realloc(x->e, (size_t)nc * sizeof *ne);
        DF_FAIL_IF(!ne, DF_ERR_NOMEM, "out of memory");
        x->e = ne;
        x->cap = nc;
    }
    xentry *e = &x->e[x->n];
    memset(e, 0, sizeof *e);
    snprintf(e->label, sizeof e->label, "%s", label);
    *out = e;
    return DF_OK;
}

df_status df_xchg_register(df_xchg *x, const char *label, df_xkind kind, size_t n,
                           df_comm_dtype dtype, int *idx) {
    DF_FAIL_IF(n == 0, DF_ERR_ARG, "register '%s' with 0 elements", label);
    xentry *e = NULL;
    DF_TRY(new_entry(x, label, &e));
    e->kind = kind;
    e->dtype = dtype;
    e->n = n;
    DF_FAIL_IF(!df_i_mul_size(n, df_comm_dtype_size(dtype), &e->bytes), DF_ERR_ARG,
               "entry '%s' too large", label);
    size_t tot;
    DF_FAIL_IF(!df_i_mul_size(e->bytes, (size_t)x->P, &tot), DF_ERR_ARG, "entry '%s' too large",
               label);
    e->tmp = df_calloc(1, tot);
    DF_FAIL_IF(!e->tmp, DF_ERR_NOMEM, "cannot allocate %zu bytes for comm entry '%s'", tot,
               label);
    e->sync_type = MPI_DATATYPE_NULL;
    e->group = -1;
    *idx = x->n++;
    return DF_OK;
}

df_status df_xchg_register_halo(df_xchg *x, const char *label, size_t n_half,
                                df_comm_dtype dtype, int *idx) {
    DF_FAIL_IF(n_half == 0, DF_ERR_ARG, "register '%s' with 0 elements", label);
    DF_FAIL_IF(x->n >= 32767, DF_ERR_ARG, "too many exchanged tensors (%d) for MPI tags", x->n);
    xentry *e = NULL;
    DF_TRY(new_entry(x, label, &e));
    e->kind = DF_XKIND_CONV;
    e->dtype = dtype;
    e->n = 2 * n_half;
    e->halo = 1;
    DF_FAIL_IF(!df_i_mul_size(n_half, df_comm_dtype_size(dtype), &e->hbytes), DF_ERR_ARG,
               "entry '%s' too large", label);
    DF_FAIL_IF(e->hbytes > (size_t)0x7fffffff, DF_ERR_ARG, "halo '%s' of %zu bytes too large",
               label, e->hbytes);
    e->bytes = 2 * e->hbytes;
    e->hbuf = df_calloc(4, e->hbytes);
    DF_FAIL_IF(!e->hbuf, DF_ERR_NOMEM, "cannot allocate %zu bytes for halo '%s'", 4 * e->hbytes,
               label);
    e->sync_type = MPI_DATATYPE_NULL;
    e->group = -1;
    *idx = x->n++;
    return DF_OK;
}

int df_xchg_is_halo(const df_xchg *x, int idx) { return x->e[idx].halo; }
void *df_xchg_halo_send(df_xchg *x, int idx, int down) {
    return x->e[idx].hbuf + (size_t)(down ? 1 : 0) * x->e[idx].hbytes;
}
void *df_xchg_halo_recv(df_xchg *x, int idx, int down) {
    return x->e[idx].hbuf + (size_t)(down ? 3 : 2) * x->e[idx].hbytes;
}

// Posts the 4 (or fewer at the edges) requests of halo entry idx into req[4].
static df_status halo_post(df_xchg *x, int idx, MPI_Request *req) {
    xentry *e = &x->e[idx];
    int up = x->me - 1, dn = x->me + 1, rc = MPI_SUCCESS;
    int cnt = (int)e->hbytes;
    MPI_Comm c = x->comm->comm;
    for (int k = 0; k < 4; k++) req[k] = MPI_REQUEST_NULL;
    if (up >= 0 && rc == MPI_SUCCESS)
        rc = MPI_Irecv(df_xchg_halo_recv(x, idx, 0), cnt, MPI_BYTE, up, idx, c, &req[2]);
    if (dn < x->P && rc == MPI_SUCCESS)
        rc = MPI_Irecv(df_xchg_halo_recv(x, idx, 1), cnt, MPI_BYTE, dn, idx, c, &req[3]);
    if (up >= 0 && rc == MPI_SUCCESS)
        rc = MPI_Isend(df_xchg_halo_send(x, idx, 0), cnt, MPI_BYTE, up, idx, c, &req[0]);
    if (dn < x->P && rc == MPI_SUCCESS)
        rc = MPI_Isend(df_xchg_halo_send(x, idx, 1), cnt, MPI_BYTE, dn, idx, c, &req[1]);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Isend/MPI_Irecv (halo)");
    uint64_t b = (uint64_t)((up >= 0) + (dn < x->P)) * e->hbytes;
    x->st.bytes_sent += b;
    x->st.bytes_recv += b;
    x->st.kind_bytes[DF_XKIND_CONV] += 2 * b;
    return DF_OK;
}

static int live_count(const MPI_Request *r, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += r[i] != MPI_REQUEST_NULL;
    return k;
}

// Waits for the in-flight exchange of halo entry idx (committed, async path).
static df_status halo_wait(df_xchg *x, int idx) {
    if (!x->hreq) return DF_OK;
    MPI_Request *r = x->hreq + 4 * (size_t)idx;
    XLOCK(x);
    int live = live_count(r, 4);
    if (live == 0) {
        XUNLOCK(x);
        return DF_OK;
    }
    int flag = 0, rc = MPI_Testall(4, r, &flag, MPI_STATUSES_IGNORE);
    double t0 = df_time_s();
    if (rc == MPI_SUCCESS && !flag) rc = MPI_Waitall(4, r, MPI_STATUSES_IGNORE);
    x->h_live -= live;
    XUNLOCK(x);
    if (!flag) {
        x->st.n_waits_blocked++;
        x->st.t_wait += df_time_s() - t0;
    }
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Waitall (halo)");
    return DF_OK;
}

df_status df_xchg_halo_sync(df_xchg *x, int idx) {
    DF_FAIL_IF(idx < 0 || idx >= x->n || !x->e[idx].halo, DF_ERR_INTERNAL,
               "comm entry %d is not a halo entry", idx);
    if (!x->mpi || x->P == 1) return DF_OK;
    DF_TRY(halo_wait(x, idx));
    double t0 = df_time_s();
    MPI_Request req[4];
    XLOCK(x);
    df_status st = halo_post(x, idx, req);
    int rc = MPI_SUCCESS;
    if (st == DF_OK) rc = MPI_Waitall(4, req, MPI_STATUSES_IGNORE);
    XUNLOCK(x);
    x->st.t_wait += df_time_s() - t0;
    DF_TRY(st);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Waitall (synchronous halo)");
    return DF_OK;
}

df_status df_xchg_commit(df_xchg *x) {
    DF_FAIL_IF(x->committed, DF_ERR_INTERNAL, "comm buffer committed twice");
    size_t off = 0, elems = 0, loff = 0;
    for (int i = 0; i < x->n; i++) {
        loff = (loff + 7) & ~(size_t)7;
        DF_FAIL_IF(!df_i_add_size(loff, x->e[i].bytes, &loff), DF_ERR_ARG,
                   "comm buffer too large");
        elems += x->e[i].n;
        if (x->e[i].halo) continue;
        off = (off + 7) & ~(size_t)7;
        x->e[i].off = off;
        DF_FAIL_IF(!df_i_add_size(off, x->e[i].bytes, &off), DF_ERR_ARG, "comm buffer too large");
    }
    off = (off + 7) & ~(size_t)7;
    x->slot_bytes = (loff + 7) & ~(size_t)7;
    x->gslot_bytes = off;
    x->slot_elems = elems;
    size_t tot;
    DF_FAIL_IF(!df_i_mul_size(off, (size_t)x->P, &tot), DF_ERR_ARG, "comm buffer too large");
    if (tot) {
        x->buf = df_calloc(1, tot);
        DF_FAIL_IF(!x->buf, DF_ERR_NOMEM, "cannot allocate the comm buffer (%d slots x %zu bytes)",
                   x->P, off);
    }
    int n = x->n > 0 ? x->n : 1;
    x->g = calloc((size_t)n, sizeof *x->g);
    x->act_req = calloc((size_t)n, sizeof *x->act_req);
    x->act_first = calloc((size_t)n, sizeof *x->act_first);
    x->tmp_idx = calloc((size_t)n, sizeof *x->tmp_idx);
    x->tmp_st = calloc((size_t)n, sizeof *x->tmp_st);
    x->hreq = malloc(4 * (size_t)n * sizeof *x->hreq);
    x->htmp = calloc(4 * (size_t)n, sizeof *x->htmp);
    DF_FAIL_IF(!x->g || !x->act_req || !x->act_first || !x->tmp_idx || !x->tmp_st || !x->hreq ||
                   !x->htmp,
               DF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < 4 * n; i++) x->hreq[i] = MPI_REQUEST_NULL;
    x->h_live = 0;
    for (int i = 0; i < x->n; i++) {
        x->g[i].type = MPI_DATATYPE_NULL;
        x->g[i].type_last = -1;
        xentry *e = &x->e[i];
        if (e->halo) continue;
        for (int j = 0; j < x->P; j++)
            memcpy(x->buf + (size_t)j * x->gslot_bytes + e->off, e->tmp + (size_t)j * e->bytes,
                   e->bytes);
        df_free(e->tmp);
        e->tmp = NULL;
    }
    // the gathered entries' slots now live in buf (slot stride = gathered part)
    x->committed = 1;
    if (x->progress == DF_PROGRESS_THREAD && x->mpi && x->P > 1) {
        pthread_mutex_init(&x->mu, NULL);
        pthread_cond_init(&x->cv, NULL);
        x->thr_stop = 0;
        DF_FAIL_IF(pthread_create(&x->thr, NULL, progress_main, x) != 0, DF_ERR_INTERNAL,
                   "cannot start the MPI progress thread");
        x->thr_on = 1;
    }
    return DF_OK;
}

int df_xchg_committed(const df_xchg *x) { return x->committed; }
int df_xchg_count(const df_xchg *x) { return x->n; }
size_t df_xchg_slot_bytes(const df_xchg *x) { return x->slot_bytes; }
size_t df_xchg_gather_slot_bytes(const df_xchg *x) { return x->gslot_bytes; }

uint64_t df_xchg_async_bytes(const df_xchg *x) {
    if (x->P <= 1) return 0;
    uint64_t b = (uint64_t)(x->P - 1) * x->gslot_bytes;
    int nb = (x->me > 0) + (x->me < x->P - 1);
    for (int i = 0; i < x->n; i++)
        if (x->e[i].halo) b += (uint64_t)nb * x->e[i].hbytes;
    return b;
}
size_t df_xchg_slot_elems(const df_xchg *x) { return x->slot_elems; }
const char *df_xchg_label(const df_xchg *x, int idx) { return x->e[idx].label; }
size_t df_xchg_entry_elems(const df_xchg *x, int idx) { return x->e[idx].n; }
df_comm_dtype df_xchg_entry_dtype(const df_xchg *x, int idx) { return x->e[idx].dtype; }

size_t df_xchg_kind_elems(const df_xchg *x, df_xkind k) {
    size_t s = 0;
    for (int i = 0; i < x->n; i++)
        if (x->e[i].kind == k) s += x->e[i].n;
    return s;
}

int df_xchg_kind_count(const df_xchg *x, df_xkind k) {
    int s = 0;
    for (int i = 0; i < x->n; i++)
        if (x->e[i].kind == k) s++;
    return s;
}

void *df_xchg_slot(df_xchg *x, int idx, int j) {
    xentry *e = &x->e[idx];
    if (!x->committed) return e->tmp + (size_t)j * e->bytes;
    return x->buf + (size_t)j * x->gslot_bytes + e->off;
}

// An all-gather of the gathered entries [first, last] (halo entries inside are skipped; the
// alignment padding after an entry counts with that entry's kind).
static void count_allgather(df_xchg *x, int first, int last) {
    uint64_t f = (uint64_t)(x->P - 1), tot = 0;
    int prev = -1;
    for (int i = first; i <= last + 1; i++) {
        if (i <= last && x->e[i].halo) continue;
        if (prev >= 0) {
            size_t b = i <= last ? x->e[i].off - x->e[prev].off : x->e[prev].bytes;
            x->st.kind_bytes[x->e[prev].kind] += 2 * f * b;
            tot += b;
        }
        prev = i;
    }
    x->st.bytes_sent += f * tot;
    x->st.bytes_recv += f * tot;
    x->st.n_collectives++;
}

// Removes completed (MPI_REQUEST_NULL) launches from the compact in-flight list.
static void compact_active(df_xchg *x) {
    int k = 0;
    for (int i = 0; i < x->n_act; i++) {
        if (x->act_req[i] == MPI_REQUEST_NULL) {
            x->g[x->act_first[i]].active = 0;
        } else {
            x->act_req[k] = x->act_req[i];
            x->act_first[k] = x->act_first[i];
            k++;
        }
    }
    x->n_act = k;
}

static df_status wait_group(df_xchg *x, int first) {
    int pos = -1;
    for (int i = 0; i < x->n_act; i++)
        if (x->act_first[i] == first) pos = i;
    if (pos < 0) {
        x->g[first].active = 0; // completed by a poll already
        return DF_OK;
    }
    double t0 = df_time_s();
    XLOCK(x);
    int done = x->act_req[pos] == MPI_REQUEST_NULL;
    int rc = MPI_SUCCESS;
    if (!done) rc = MPI_Wait(&x->act_req[pos], MPI_STATUS_IGNORE);
    compact_active(x);
    XUNLOCK(x);
    if (!done) {
        x->st.n_waits_blocked++;
        x->st.t_wait += df_time_s() - t0;
    }
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Wait(Iallgather)");
    return DF_OK;
}

df_status df_xchg_wait(df_xchg *x, int idx) {
    DF_FAIL_IF(idx < 0 || idx >= x->n, DF_ERR_INTERNAL, "comm entry %d out of range", idx);
    if (!x->committed) return DF_OK;
    if (x->e[idx].halo) return halo_wait(x, idx);
    int gf = x->e[idx].group;
    if (gf < 0 || !x->g[gf].active) return DF_OK;
    return wait_group(x, gf);
}

df_status df_xchg_sync(df_xchg *x, int idx) {
    DF_FAIL_IF(idx < 0 || idx >= x->n, DF_ERR_INTERNAL, "comm entry %d out of range", idx);
    xentry *e = &x->e[idx];
    DF_FAIL_IF(e->halo, DF_ERR_INTERNAL, "halo entry %d exchanged with df_xchg_sync", idx);
    if (!x->mpi || x->P == 1) return DF_OK;
    DF_TRY(df_xchg_wait(x, idx));
    double t0 = df_time_s();
    int rc;
    if (!x->committed) {
        MPI_Datatype t;
        DF_TRY(make_slot_type(e->bytes, e->bytes, &t));
        rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, e->tmp, 1, t, x->comm->comm);
        MPI_Type_free(&t);
    } else {
        if (e->sync_type == MPI_DATATYPE_NULL)
            DF_TRY(make_slot_type(e->bytes, x->gslot_bytes, &e->sync_type));
        XLOCK(x);
        rc = MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x->buf + e->off, 1, e->sync_type,
                           x->comm->comm);
        XUNLOCK(x);
    }
    x->st.t_wait += df_time_s() - t0;
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Allgather (synchronous exchange)");
    count_allgather(x, idx, idx);
    return DF_OK;
}

static df_status launch_queue(df_xchg *x) {
    if (x->q_first < 0) return DF_OK;
    int first = x->q_first, last = x->q_last;
    x->q_first = x->q_last = -1;
    while (first <= last && x->e[first].halo) first++; // halo entries are already posted
    while (last >= first && x->e[last].halo) last--;
    if (first > last) return DF_OK;
    for (int i = first; i <= last; i++)
        if (!x->e[i].halo) x->e[i].group = first;
    size_t off = x->e[first].off;
    size_t bytes = x->e[last].off + x->e[last].bytes - off;
    if (!x->mpi || x->P == 1) return DF_OK;
    xgroup *g = &x->g[first];
    if (g->type_last != last) {
        if (g->type != MPI_DATATYPE_NULL) MPI_Type_free(&g->type);
        DF_TRY(make_slot_type(bytes, x->gslot_bytes, &g->type));
        g->type_last = last;
    }
    g->last = last;
    double t0 = df_time_s();
    XLOCK(x);
    MPI_Request req = MPI_REQUEST_NULL;
    int rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x->buf + off, 1, g->type,
                            x->comm->comm, &req);
    if (rc == MPI_SUCCESS) {
        x->act_req[x->n_act] = req;
        x->act_first[x->n_act] = first;
        x->n_act++;
        g->active = 1;
        if (x->thr_on) pthread_cond_signal(&x->cv);
    }
    XUNLOCK(x);
    x->st.t_progress += df_time_s() - t0;
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Iallgather");
    count_allgather(x, first, last);
    return DF_OK;
}

df_status df_xchg_enqueue(df_xchg *x, int idx) {
    DF_FAIL_IF(!x->committed, DF_ERR_INTERNAL,
               "enqueue of entry %d before the comm buffer exists (the planning step must be "
               "synchronous)",
               idx);
    DF_FAIL_IF(idx < 0 || idx >= x->n, DF_ERR_INTERNAL, "comm entry %d out of range", idx);
    if (x->q_first >= 0 && idx != x->q_last + 1)
        return DF_ERROR(DF_ERR_INTERNAL,
                        "comm entry %d ('%s') enqueued after %d: entries must be enqueued in "
                        "forward order",
                        idx, x->e[idx].label, x->q_last);
    if (x->e[idx].halo) { // posted now; keeps its place in the queue order
        if (x->mpi && x->P > 1) {
            MPI_Request *r = x->hreq + 4 * (size_t)idx;
            XLOCK(x);
            int busy = live_count(r, 4);
            df_status st = busy ? DF_OK : halo_post(x, idx, r);
            if (st == DF_OK) x->h_live += live_count(r, 4);
            if (x->thr_on) pthread_cond_signal(&x->cv);
            XUNLOCK(x);
            if (busy)
                return DF_ERROR(DF_ERR_INTERNAL,
                                "halo entry %d ('%s') enqueued while its previous exchange is "
                                "in flight",
                                idx, x->e[idx].label);
            DF_TRY(st);
        }
        if (x->q_first < 0) x->q_first = idx;
        x->q_last = idx;
        if (x->q_last - x->q_first + 1 >= x->checkpoint) DF_TRY(launch_queue(x));
        return DF_OK;
    }
    int gf = x->e[idx].group;
    if (gf >= 0 && x->g[gf].active) {
        // The previous gather of this entry is still in flight: its consumer did not wait.
        // Writing the own slot now would race with MPI; this is a caller bug.
        return DF_ERROR(DF_ERR_INTERNAL,
                        "comm entry %d ('%s') enqueued while its previous gather is in flight",
                        idx, x->e[idx].label);
    }
    if (x->q_first < 0) x->q_first = idx;
    x->q_last = idx;
    if (x->q_last - x->q_first + 1 >= x->checkpoint) DF_TRY(launch_queue(x));
    return DF_OK;
}

df_status df_xchg_flush(df_xchg *x) { return launch_queue(x); }

df_status df_xchg_progress(df_xchg *x) {
    if ((x->n_act == 0 && x->h_live == 0) || x->progress == DF_PROGRESS_NONE) return DF_OK;
    double t0 = df_time_s();
    XLOCK(x);
    int outc = 0, rc = MPI_SUCCESS;
    if (x->n_act > 0) {
        rc = MPI_Testsome(x->n_act, x->act_req, &outc, x->tmp_idx, MPI_STATUSES_IGNORE);
        if (rc == MPI_SUCCESS && outc != 0) compact_active(x);
    }
    if (rc == MPI_SUCCESS && x->h_live > 0) {
        outc = 0;
        rc = MPI_Testsome(4 * x->n, x->hreq, &outc, x->htmp, MPI_STATUSES_IGNORE);
        if (rc == MPI_SUCCESS && outc != MPI_UNDEFINED) x->h_live -= outc;
    }
    XUNLOCK(x);
    x->st.t_progress += df_time_s() - t0;
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Testsome");
    return DF_OK;
}

df_status df_xchg_quiesce(df_xchg *x) {
    if (!x->committed) return DF_OK;
    DF_TRY(launch_queue(x));
    while (x->n_act > 0) DF_TRY(wait_group(x, x->act_first[0]));
    for (int i = 0; i < x->n; i++)
        if (x->e[i].halo) DF_TRY(halo_wait(x, i));
    return DF_OK;
}

df_status df_xchg_allreduce_f64(df_xchg *x, double *buf, size_t n) {
    if (!x->mpi || x->P == 1) return DF_OK;
    double t0 = df_time_s();
    XLOCK(x);
    df_status st = df_comm_allreduce_sum_f64(x->comm, buf, n);
    XUNLOCK(x);
    x->st.t_wait += df_time_s() - t0;
    uint64_t b = (uint64_t)n * 8;
    uint64_t way = 2 * (uint64_t)(x->P - 1) * b / (uint64_t)x->P;
    x->st.bytes_sent += way;
    x->st.bytes_recv += way;
    x->st.kind_bytes[DF_XKIND_GN] += 2 * way;
    x->st.n_collectives++;
    return st;
}

void df_xchg_stats_get(const df_xchg *x, df_xchg_stats *out) { *out = x->st; }
void df_xchg_stats_reset(df_xchg *x) { memset(&x->st, 0, sizeof x->st); }
