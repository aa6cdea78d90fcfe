// The MPI side of df_comm, for the runtime's own MPI code (src/runtime/*.c only: it includes
// <mpi.h>; everything outside the runtime uses the MPI-free comm.h).
#ifndef DF_RUNTIME_COMM_MPI_H
#define DF_RUNTIME_COMM_MPI_H

#include "runtime/comm.h"

#include <mpi.h>

// The communicator of c (MPI_COMM_NULL when MPI is inactive). Borrowed: c keeps owning it.
MPI_Comm df_comm_mpi(const df_comm *c);

#endif // DF_RUNTIME_COMM_MPI_H
