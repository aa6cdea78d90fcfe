// Communication layer of the distributed runtime. MPI-free header: <mpi.h> is included only by
// src/runtime/*.c. Two parts:
//
// 1. Process / communicator helpers (df_mpi_*, df_comm_*): MPI initialisation that also works
//    without a launcher (a process started without mpiexec runs as one rank and never touches
//    MPI), MPI_ERRORS_RETURN on every communicator, blocking collectives used by the runtime and
//    the tests, and MPI_Abort for the top level.
//
// 2. The communication manager (df_xchg), DistriFusion's comm manager (spec §3): every exchanged
//    tensor ("entry") is registered once during the planning forward, then lives at a fixed byte
//    range of one flat buffer with P slots (slot j = patch j's latest contribution, slot-major
//    buf[P][slot_bytes]). A synchronous step all-gathers one entry at a time (blocking). An
//    asynchronous step enqueues fresh entries in forward order; every `checkpoint` entries the
//    contiguous byte range of the queued entries is sent with ONE MPI_Iallgather (in place, a
//    resized contiguous datatype strides over the slots); the tail is launched by
//    df_xchg_flush() at the end of the step. A consumer calls df_xchg_wait(idx) right before it
//    reads the slots in the next step. Because every group is launched in the step that filled
//    it and waited for before its first reader of the next step, every reader sees data that is
//    exactly one step old, whatever the checkpoint (the original launched the tail only at the
//    next step's first enqueue, so with fewer entries than the checkpoint layer 0 read 2-step-old
//    data and raced with the in-flight gather).
//
// Progress: Open MPI advances non-blocking collectives only inside MPI calls. df_xchg_progress()
// (an MPI_Testsome over the in-flight groups) is called by the patch context at every layer
// boundary (DF_PROGRESS_TEST, the default); DF_PROGRESS_THREAD adds a thread that polls while
// the main thread computes (needs MPI_THREAD_MULTIPLE); DF_PROGRESS_NONE only waits (baseline
// for measuring overlap).
//
// Halo entries (df_xchg_register_halo, issue 8): a conv halo goes point to point to the two
// neighbour patches only (me-1 gets my top rows, me+1 my bottom rows) instead of through the
// all-gather; they take no space in the flat buffer. A synchronous step exchanges one entry
// with df_xchg_halo_sync (Isend/Irecv + Waitall); an asynchronous step calls df_xchg_wait(idx)
// (the receives of the previous step, and its sends, so that the send buffers may be rewritten)
// before reading the receive buffers, then writes the send buffers and df_xchg_enqueue(idx),
// which posts the MPI_Irecv/MPI_Isend at once (halo entries keep their place in the forward
// order of the queue but add no bytes to the batched gathers). Progress polls test them too.
//
// Volume accounting is logical per rank: an all-gather of r bytes over P ranks counts
// (P-1)*r bytes sent and (P-1)*r received (what a ring algorithm moves per rank); an all-reduce
// of r bytes counts 2(P-1)/P*r each way; a halo entry counts its half (one neighbour's part)
// once per neighbour each way.
#ifndef DF_RUNTIME_COMM_H
#define DF_RUNTIME_COMM_H

#include "distrifuse/engine.h"

#include "core/core.h"

#include <stddef.h>
#include <stdint.h>

// ---------------------------------------------------------------------------------------------
// Process level

// Initialises MPI when `launched` != 0: the program decides whether it was started by an MPI
// launcher (mpiexec/mpirun/srun; the programs detect it from the launcher's environment in
// tools/common/tool_env.c, the library reads no environment); otherwise the process runs as a
// single rank without MPI. Idempotent; uses an
// MPI already initialised by the caller. thread_multiple != 0 requests MPI_THREAD_MULTIPLE (for
// the progress thread), else MPI_THREAD_FUNNELED. Sets MPI_ERRORS_RETURN on MPI_COMM_WORLD and
// the log prefix "[rR/N]".
df_status df_mpi_init(int *argc, char ***argv, int thread_multiple, int launched);
int df_mpi_active(void);           // 1 if MPI is initialised and in use
int df_mpi_thread_multiple(void);  // 1 if MPI_THREAD_MULTIPLE was provided
int df_mpi_world_rank(void);       // 0 without MPI
int df_mpi_world_size(void);       // 1 without MPI
// Finalises MPI if df_mpi_init initialised it (no-op otherwise).
df_status df_mpi_finalize(void);
// Top level only: terminates every rank of the job with `code` (MPI_Abort on the world); returns
// only when MPI is not in use (the caller then exits itself).
void df_mpi_abort(int code);

// ---------------------------------------------------------------------------------------------
// Communicators (a thin owner of an MPI communicator; size 1 and no MPI when MPI is inactive)
typedef struct df_comm df_comm;

df_status df_comm_world(df_comm **out);                                   // dup of the world
df_status df_comm_split(const df_comm *parent, int color, int key, df_comm **out);
void df_comm_destroy(df_comm *c);                                         // accepts NULL
int df_comm_rank(const df_comm *c);
int df_comm_size(const df_comm *c);

// Blocking collectives. Errors: DF_ERR_COMM with the MPI error string and the operation.
df_status df_comm_barrier(df_comm *c);
// recv: [size][bytes] (rank order); send may alias recv + rank*bytes.
df_status df_comm_allgather(df_comm *c, const void *send, void *recv, size_t bytes);
// Variable-size all-gather: rank r's bytes[r] bytes land at recv + displ[r] (byte counts and
// displacements as int, as MPI counts); send is this rank's block (must not alias recv).
df_status df_comm_allgatherv(df_comm *c, const void *send, void *recv, const int *bytes,
                             const int *displ);
df_status df_comm_allreduce_sum_f64(df_comm *c, double *buf, size_t n);  // in place
df_status df_comm_allreduce_sum_f32(df_comm *c, float *buf, size_t n);   // in place
df_status df_comm_allreduce_max_i32(df_comm *c, int *buf, size_t n);     // in place
df_status df_comm_bcast(df_comm *c, void *buf, size_t bytes, int root);
// Every rank contributes its local status; returns the worst (largest) code on all ranks, so a
// failure detected on one rank can be turned into a clean exit on every rank.
df_status df_comm_agree(df_comm *c, df_status local);

// ---------------------------------------------------------------------------------------------
// Communication manager

// df_comm_dtype, df_progress and their names: distrifuse/engine.h (public)
size_t df_comm_dtype_size(df_comm_dtype t);


// Kinds of exchanged tensors (for statistics and labels).
typedef enum df_xkind { DF_XKIND_CONV = 0, DF_XKIND_ATTN, DF_XKIND_GN, DF_XKIND_COUNT } df_xkind;

// Counters of one step (or accumulated). Times in seconds.
typedef struct df_xchg_stats {
    double t_wait;        // blocked in MPI_Wait / blocking collectives of the manager
    double t_progress;    // inside MPI_Testsome polls (main thread)
    uint64_t bytes_sent;  // logical per-rank volume (see top of file)
    uint64_t bytes_recv;
    int n_collectives;    // collectives started (blocking + non-blocking)
    int n_waits_blocked;  // consumer waits that found their group still in flight
    uint64_t kind_bytes[DF_XKIND_COUNT]; // bytes_sent + bytes_recv by entry kind
} df_xchg_stats;

typedef struct df_xchg df_xchg;

// comm: the patch group (P = its size). checkpoint >= 1: entries per batched collective.
// The comm is borrowed and must outlive the manager.
df_status df_xchg_create(df_comm *comm, int checkpoint, df_progress progress, df_xchg **out);
void df_xchg_destroy(df_xchg *x); // accepts NULL; waits for in-flight collectives

// Planning: registers an entry of n elements of dtype; returns its index (registration order =
// forward order) in *idx. Only before df_xchg_commit. Until commit, the entry's slots live in a
// temporary block (sync exchanges work already, so the planning forward is a real step).
df_status df_xchg_register(df_xchg *x, const char *label, df_xkind kind, size_t n,
                           df_comm_dtype dtype, int *idx);
// Planning: registers a halo entry (see the top of the file) of 2 x n_half elements: the part
// for the neighbour above (top rows) and the part for the neighbour below (bottom rows).
df_status df_xchg_register_halo(df_xchg *x, const char *label, size_t n_half,
                                df_comm_dtype dtype, int *idx);
int df_xchg_is_halo(const df_xchg *x, int idx);
// Halo entry buffers of n_half elements: send part `down` (0: my top rows, for me-1; 1: my
// bottom rows, for me+1) and receive part `down` (0: from me-1, its bottom rows; 1: from me+1,
// its top rows). Valid from registration on; do not touch while in flight (df_xchg_wait).
void *df_xchg_halo_send(df_xchg *x, int idx, int down);
void *df_xchg_halo_recv(df_xchg *x, int idx, int down);
// Blocking neighbour exchange of halo entry idx (waits for its in-flight exchange first).
df_status df_xchg_halo_sync(df_xchg *x, int idx);
// Per-rank bytes of one asynchronous step each way (sent = received): (P-1) x the gathered
// part of a slot + the halo parts for this rank's neighbours (1 or 2).
uint64_t df_xchg_async_bytes(const df_xchg *x);
// Allocates the flat buffer (P x slot_bytes) and moves the planning data into it.
df_status df_xchg_commit(df_xchg *x);
int df_xchg_committed(const df_xchg *x);
int df_xchg_count(const df_xchg *x);
size_t df_xchg_slot_bytes(const df_xchg *x);     // bytes of one slot (sum over entries,
                                                 // halo entries included: the logical slot)
size_t df_xchg_gather_slot_bytes(const df_xchg *x); // the all-gathered part (no halo entries)
size_t df_xchg_slot_elems(const df_xchg *x);     // elements of one slot
size_t df_xchg_kind_elems(const df_xchg *x, df_xkind k);
int df_xchg_kind_count(const df_xchg *x, df_xkind k);
const char *df_xchg_label(const df_xchg *x, int idx);
size_t df_xchg_entry_elems(const df_xchg *x, int idx);
df_comm_dtype df_xchg_entry_dtype(const df_xchg *x, int idx);

// Slot j's storage of entry idx (j = patch index 0..P-1; not for halo entries). Write the own
// slot before df_xchg_sync / df_xchg_enqueue; read other slots after df_xchg_sync /
// df_xchg_wait.
void *df_xchg_slot(df_xchg *x, int idx, int j);

// Blocking all-gather of entry idx (own slot -> every slot). Waits first for any in-flight
// group that covers idx.
df_status df_xchg_sync(df_xchg *x, int idx);
// Waits for the in-flight group covering idx, if any (no-op otherwise).
df_status df_xchg_wait(df_xchg *x, int idx);
// Appends idx (its own slot already written) to the queue; launches the queued range when the
// queue reaches the checkpoint. Entries must be enqueued in increasing consecutive order within
// a step. DF_ERR_INTERNAL if idx is out of order or its previous gather is still in flight.
df_status df_xchg_enqueue(df_xchg *x, int idx);
// Launches the queued tail (end of an asynchronous step).
df_status df_xchg_flush(df_xchg *x);
// Polls in-flight groups (MPI_Testsome); cheap when nothing is in flight.
df_status df_xchg_progress(df_xchg *x);
// Flushes and waits for everything in flight.
df_status df_xchg_quiesce(df_xchg *x);
// Blocking SUM all-reduce of n doubles in place on the manager's communicator (sync GroupNorm);
// counted in the stats.
df_status df_xchg_allreduce_f64(df_xchg *x, double *buf, size_t n);

// Statistics since the last df_xchg_stats_reset (time spent by the progress thread is not
// included in t_progress).
void df_xchg_stats_get(const df_xchg *x, df_xchg_stats *out);
void df_xchg_stats_reset(df_xchg *x);

#endif // DF_RUNTIME_COMM_H
