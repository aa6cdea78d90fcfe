# MPI tests of the distributed runtime (src/runtime/). Included by CMakeLists.txt.
# Each program is run as a plain process (no launcher: one rank, no MPI) and under mpiexec with
# several rank counts (oversubscribed: the CI machine has 2 cores).
set(DF_MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;ASAN_OPTIONS=detect_leaks=0;OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

function(df_mpi_test name src)
  df_executable(${name} tests ${src})
  # plain process
  add_test(NAME ${name}_single COMMAND ${name} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(${name}_single PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    LABELS "mpi" ENVIRONMENT "${DF_MPI_ENV}")
  foreach(np ${ARGN})
    add_test(NAME ${name}_n${np}
      COMMAND ${DF_MPIEXEC} -n ${np} $<TARGET_FILE:${name}>
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(${name}_n${np} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
      LABELS "mpi" ENVIRONMENT "${DF_MPI_ENV}")
  endforeach()
endfunction()

df_mpi_test(test_mpi_patch ${CMAKE_CURRENT_LIST_DIR}/test_mpi_patch.c 2 3 4)

# Overlap measurement of the comm manager (progress strategies); a tiny smoke run as a test.
df_executable(df-mpi-overlap tests ${CMAKE_CURRENT_LIST_DIR}/mpi_overlap.c)
add_test(NAME mpi_overlap_smoke_n2
  COMMAND ${DF_MPIEXEC} -n 2 $<TARGET_FILE:df-mpi-overlap> --entries 6 --kib 64 --ms 0.2
          --steps 3 --trials 1 --ckpt 4
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(mpi_overlap_smoke_n2 PROPERTIES TIMEOUT 120 LABELS "mpi"
  ENVIRONMENT "${DF_MPI_ENV}")
