// The programs' environment (linked into every distrifuse executable, CMake df_executable): the
// library reads no environment variables; the programs read these here and pass them in.
//
//   OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK, PMI_SIZE, MV2_COMM_WORLD_SIZE, MPI_LOCALNRANKS
//                     set by an MPI launcher (Open MPI, PMIx, MPICH/Hydra, MVAPICH, Intel MPI):
//                     the process runs under mpiexec and initialises MPI
//   DF_FORCE_MPI=1    initialise MPI without a launcher (singleton MPI)
//   DF_DATA_DIR       folder holding clip/ (the shipped CLIP vocabulary); default: the build
//                     option DF_DATA_DIR (<source>/data)
//   DF_UNET_CACHE_MB  f32 weight cache limit of the UNet (default: build option, 256)
//   DF_UNET_PROFILE=1 per-operation UNet profile on stderr at exit
#ifndef DF_TOOLS_COMMON_TOOL_ENV_H
#define DF_TOOLS_COMMON_TOOL_ENV_H

#include "distrifuse/pipeline.h"

// 1 when started by an MPI launcher (or DF_FORCE_MPI=1): pass to df_dist_init / df_mpi_init.
int df_tool_launched_by_mpi(void);

// df_load_params_default() with DF_DATA_DIR, DF_UNET_CACHE_MB and DF_UNET_PROFILE applied.
df_load_params df_tool_load_params(void);

#endif // DF_TOOLS_COMMON_TOOL_ENV_H
