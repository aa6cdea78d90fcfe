// LD_PRELOAD shim for Debian's MPICH 4.0.2 (ch4:ucx) with UCX 1.13 over TCP, used only by
// `scripts/cluster.sh mpirun --mpi mpich` (built by `scripts/cluster.sh build-mpich`).
//
// The bug it works around: MPICH 4.0.2's MPI_Finalize closes every UCX endpoint in flush mode
// (ucp_disconnect_nb), progresses until every close has completed, and only then enters the
// PMI barrier. When the two ends of a TCP connection raced at wire-up (both connected at once
// and one side's connect request was ignored), that side's close-flush needs one more reply
// from its peer. If the peer finalised first, it is already blocked in the PMI barrier, makes
// no UCX progress, and the late rank polls forever (rank 0 in ucp_worker_progress, rank 1 in
// read() of the PMI socket). A plain MPI_Init / MPI_Allgather / MPI_Allreduce / MPI_Finalize
// program hangs this way in about 1 of 4 runs when one rank reaches MPI_Finalize a second
// after the other; distrifuse's rank 0 always does (it writes the image). Later MPICH
// versions enter the PMI barrier before the disconnects.
//
// The shim closes each endpoint in flush mode itself and progresses the endpoint's worker for
// at most DF_UCX_CLOSE_TIMEOUT_MS (default 1000) milliseconds; a close that has not completed
// by then is left to ucp_worker_destroy, and MPICH goes on to the PMI barrier. Nothing is lost:
// at MPI_Finalize every MPI operation has completed, and df_mpi_finalize calls MPI_Barrier
// just before it, so every message has been received (a completed flush takes a few ms).
// (UCP_EP_CLOSE_MODE_FORCE is no alternative: MPICH's endpoints lack UCP_ERR_HANDLING_MODE_PEER,
// and UCX rejects a forced close of them.)
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <ucp/api/ucp.h>

typedef ucs_status_t (*ep_create_fn)(ucp_worker_h, const ucp_ep_params_t *, ucp_ep_h *);

// endpoint -> worker (MPICH 4.0.2 creates one endpoint per peer and VCI pair)
static struct {
    ucp_ep_h ep;
    ucp_worker_h w;
} *g_map;
static size_t g_n, g_cap;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

ucs_status_t ucp_ep_create(ucp_worker_h worker, const ucp_ep_params_t *params, ucp_ep_h *ep_p) {
    static ep_create_fn real;
    if (!real) real = (ep_create_fn)dlsym(RTLD_NEXT, "ucp_ep_create");
    if (!real) return UCS_ERR_UNSUPPORTED;
    ucs_status_t st = real(worker, params, ep_p);
    if (st != UCS_OK) return st;
    pthread_mutex_lock(&g_mu);
    if (g_n == g_cap) {
        size_t nc = g_cap ? 2 * g_cap : 64;
        void *p = realloc(g_map, nc * sizeof *g_map);
        if (p) {
            g_map = p;
            g_cap = nc;
        }
    }
    if (g_n < g_cap) {
        g_map[g_n].ep = *ep_p;
        g_map[g_n].w = worker;
        g_n++;
    }
    pthread_mutex_unlock(&g_mu);
    return st;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

ucs_status_ptr_t ucp_disconnect_nb(ucp_ep_h ep) {
    ucp_worker_h w = NULL;
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_n; i++)
        if (g_map[i].ep == ep) w = g_map[i].w;
    pthread_mutex_unlock(&g_mu);
    ucs_status_ptr_t req = ucp_ep_close_nb(ep, UCP_EP_CLOSE_MODE_FLUSH);
    if (req == NULL || UCS_PTR_IS_ERR(req) || !w) return req; // done, failed, or unknown ep
    const char *e = getenv("DF_UCX_CLOSE_TIMEOUT_MS");
    double limit = (e && *e ? atof(e) : 1000.0) * 1e-3, t0 = now_s();
    while (ucp_request_check_status(req) == UCS_INPROGRESS && now_s() - t0 < limit)
        ucp_worker_progress(w);
    ucs_status_t st = ucp_request_check_status(req);
    ucp_request_free(req); // released on completion if still in progress
    return st == UCS_INPROGRESS ? NULL : UCS_STATUS_PTR(st);
}
