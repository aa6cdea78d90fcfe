# Command-line tests of the `distrifuse` binary (tests/cli/cli_test.sh CASE) and the end-to-end
# golden pipeline cases of tests/test_pipeline.c, one CTest test per case so they run in parallel.
# Included by CMakeLists.txt.
if(TARGET distrifuse-cli)
  set(DF_CLI_ENV "DF_TEST_MODELS=${CMAKE_BINARY_DIR}/test-models;DF_BIN=${CMAKE_BINARY_DIR}/distrifuse;DF_MAKE_MODEL=${CMAKE_BINARY_DIR}/tools/df-make-model;DF_SRC=${CMAKE_SOURCE_DIR};DF_MPIEXEC=${MPIEXEC_EXECUTABLE};OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
  foreach(case help usage_errors runtime_errors generate latent_roundtrip demo mpi)
    add_test(NAME cli_${case}
      COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/cli_test.sh ${case}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set(env "${DF_CLI_ENV}")
    if(case STREQUAL "mpi")
      # Open MPI's plugins leak: no leak checking under mpiexec (ASan builds)
      set(env "${env};ASAN_OPTIONS=detect_leaks=0")
    endif()
    set_tests_properties(cli_${case} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
      LABELS "cli;fast" ENVIRONMENT "${env}" FIXTURES_REQUIRED df_models)
  endforeach()
endif()

# distrifuse-bench (tests/cli/bench_test.sh CASE): 1 process, mpiexec -n 2, usage errors.
if(TARGET distrifuse-bench AND TARGET distrifuse-cli)
  set(DF_BENCH_ENV "DF_BENCH=${CMAKE_BINARY_DIR}/distrifuse-bench;DF_BIN=${CMAKE_BINARY_DIR}/distrifuse;DF_MAKE_MODEL=${CMAKE_BINARY_DIR}/tools/df-make-model;DF_MPIEXEC=${MPIEXEC_EXECUTABLE};OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
  foreach(case single mpi usage)
    add_test(NAME cli_bench_${case}
      COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/bench_test.sh ${case}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set(env "${DF_BENCH_ENV}")
    if(case STREQUAL "mpi")
      set(env "${env};ASAN_OPTIONS=detect_leaks=0")
    endif()
    set_tests_properties(cli_bench_${case} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
      LABELS "cli;fast" ENVIRONMENT "${env}")
  endforeach()
endif()

# tests/test_pipeline.c without arguments runs its fast checks (registered as `pipeline` by the
# tests/test_*.c rule); each golden case runs as its own test here.
if(TARGET test_pipeline)
  foreach(case sdxl/pipe_euler_512 sdxl/pipe_ddim_512 sdxl/pipe_dpmpp2m_512
               sdxl/pipe_euler_384x640 sdxl/pipe_ddim_512_negprompt
               sd15/pipe_pndm_512 sd15/pipe_pndm_256 sd15/pipe_ddim_512 sd15/pipe_euler_512
               sd15/pipe_dpmpp2m_384x640)
    string(REPLACE "/" "." tname ${case})
    add_test(NAME pipeline_golden.${tname} COMMAND test_pipeline ${case}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(pipeline_golden.${tname} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
      LABELS "golden;slow")
  endforeach()
endif()

# The 56 DistriFusion goldens through the command line (mpiexec -n 2 / 4 distrifuse ...
# --gn-compat original; tests/cli/dist_golden.py); -DDF_GOLDEN_ALL=OFF (the ASan stage) runs the
# subset of 9 that test_mpi_golden runs there.
if(TARGET distrifuse-cli)
  set(DF_CLI_GOLDEN_FILTER "")
  if(DEFINED DF_GOLDEN_ALL AND NOT DF_GOLDEN_ALL)
    set(DF_CLI_GOLDEN_FILTER "ddim_n2_nosplit_patch_corrected_async_gn_w1,ddim_n2_nosplit_patch_full_sync_w4,ddim_n2_split_patch_corrected_async_gn_w4,ddim_n2_nosplit_naive_patch_alternate_w4,ddim_n2_nosplit_patch_sync_gn_w1,ddim_n4_nosplit_patch_corrected_async_gn_w4,ddim_n4_split_patch_sync_gn_w1,euler_n4_split_patch_corrected_async_gn_w1,ddim_n4_split_naive_patch_col_w4")
  endif()
  add_test(NAME cli_dist_golden
    COMMAND python3 ${CMAKE_CURRENT_LIST_DIR}/dist_golden.py ${CMAKE_BINARY_DIR}/distrifuse
            ${MPIEXEC_EXECUTABLE} ${CMAKE_SOURCE_DIR}/../shared/golden ${DF_CLI_GOLDEN_FILTER}
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(cli_dist_golden PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1800
    LABELS "golden;slow" ENVIRONMENT "${DF_CLI_ENV};ASAN_OPTIONS=detect_leaks=0")
endif()

# Faults (tests/cli/fault_test.sh CASE): NaN weights and --check-finite, a model file truncated
# while mapped (SIGBUS), a full disk (tmpfs; 77 where mounting is refused), a hung / dead rank
# with --rank-timeout.
if(TARGET distrifuse-cli)
  foreach(case nonfinite sigbus diskfull rank_hang)
    add_test(NAME cli_fault_${case}
      COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/fault_test.sh ${case}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(cli_fault_${case} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
      LABELS "cli;fast" FIXTURES_REQUIRED df_models
      ENVIRONMENT "${DF_CLI_ENV};ASAN_OPTIONS=detect_leaks=0:handle_sigbus=0")
  endforeach()
endif()
# Batch generation (tests/cli/batch_test.sh CASE): caption lists, resume, shards, usage errors,
# under mpiexec -n 2, and image groups at 4 ranks.
if(TARGET distrifuse-cli)
  foreach(case list resume split usage mpi groups)
    add_test(NAME cli_batch_${case}
      COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/batch_test.sh ${case}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set(env "${DF_CLI_ENV}")
    if(case STREQUAL "mpi" OR case STREQUAL "groups")
      set(env "${env};ASAN_OPTIONS=detect_leaks=0")
    endif()
    set_tests_properties(cli_batch_${case} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
      LABELS "cli" ENVIRONMENT "${env}")
  endforeach()
endif()

# scripts/quality.sh end to end on the demo model (small); skips (77) until
# build/distrifuse-metrics exists.
if(TARGET distrifuse-cli)
  add_test(NAME cli_quality_script
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/quality_test.sh
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(cli_quality_script PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "cli"
    ENVIRONMENT "DF_BUILD=${CMAKE_BINARY_DIR};DF_SRC=${CMAKE_SOURCE_DIR};DF_MPIEXEC=${MPIEXEC_EXECUTABLE};OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;ASAN_OPTIONS=detect_leaks=0")
endif()
