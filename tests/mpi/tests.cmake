# MPI tests of the distributed runtime (src/runtime/). Included by CMakeLists.txt.
# Each program is run as a plain process (no launcher: one rank, no MPI) and under mpiexec with
# several rank counts (oversubscribed: the CI machine has 2 cores).
set(DF_MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;ASAN_OPTIONS=detect_leaks=0;OMP_NUM_THREADS=1;OPENBLAS_NUM_THREADS=1")

function(df_mpi_test name src)
  df_executable(${name} tests ${src})
  # plain process
  add_test(NAME ${name}_single COMMAND ${name} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(${name}_single PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
    LABELS "mpi;fast" ENVIRONMENT "${DF_MPI_ENV}" FIXTURES_REQUIRED df_models)
  foreach(np ${ARGN})
    add_test(NAME ${name}_n${np}
      COMMAND ${DF_MPIEXEC} -n ${np} $<TARGET_FILE:${name}>
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(${name}_n${np} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
      LABELS "mpi;fast" ENVIRONMENT "${DF_MPI_ENV}" FIXTURES_REQUIRED df_models)
  endforeach()
endfunction()

df_mpi_test(test_mpi_patch ${CMAKE_CURRENT_LIST_DIR}/test_mpi_patch.c 2 3 4)
# uneven bands: latent height 22 = 11 deepest-level rows (6/5, 4/4/3, 3/3/3/2, 3/2/2/2/2)
foreach(np 2 3 4 5)
  add_test(NAME test_mpi_patch_uneven_n${np}
    COMMAND ${DF_MPIEXEC} -n ${np} $<TARGET_FILE:test_mpi_patch> 22
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(test_mpi_patch_uneven_n${np} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
    LABELS "mpi" ENVIRONMENT "${DF_MPI_ENV}")
endforeach()

# Overlap measurement of the comm manager (progress strategies); a tiny smoke run as a test.
df_executable(df-mpi-overlap tests ${CMAKE_CURRENT_LIST_DIR}/mpi_overlap.c)
add_test(NAME mpi_overlap_smoke_n2
  COMMAND ${DF_MPIEXEC} -n 2 $<TARGET_FILE:df-mpi-overlap> --entries 6 --kib 64 --reps 2
          --steps 3 --trials 1 --ckpt 4
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(mpi_overlap_smoke_n2 PROPERTIES TIMEOUT 120 LABELS "mpi;fast"
  ENVIRONMENT "${DF_MPI_ENV}")

# DistriFusion goldens (tiny SDXL, 10 steps): N = 1 checks the single-device latents; N = 2 / 4
# check manifest configurations of that world size: all 56 by default (about 80 s on 2 idle
# cores); -DDF_GOLDEN_ALL=OFF runs a representative subset of 9.
option(DF_GOLDEN_ALL "Run every DistriFusion golden configuration" ON)
df_executable(test_mpi_golden tests ${CMAKE_CURRENT_LIST_DIR}/test_mpi_golden.c)
target_include_directories(test_mpi_golden PRIVATE ${CJSON_INCLUDE_DIR})
add_test(NAME mpi_golden_single COMMAND test_mpi_golden ddim WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(mpi_golden_single PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "mpi"
  ENVIRONMENT "${DF_MPI_ENV}")
if(DF_GOLDEN_ALL)
  set(DF_GOLDEN_SETS "2|ddim_n2" "2|euler_n2" "4|ddim_n4_split" "4|ddim_n4_nosplit" "4|euler_n4")
else()
  set(DF_GOLDEN_SETS
    "2|ddim_n2_nosplit_patch_corrected_async_gn_w1,ddim_n2_nosplit_patch_full_sync_w4,ddim_n2_split_patch_corrected_async_gn_w4"
    "2|ddim_n2_nosplit_naive_patch_alternate_w4,ddim_n2_nosplit_patch_sync_gn_w1"
    "4|ddim_n4_nosplit_patch_corrected_async_gn_w4,ddim_n4_split_patch_sync_gn_w1"
    "4|euler_n4_split_patch_corrected_async_gn_w1,ddim_n4_split_naive_patch_col_w4")
endif()
set(i 0)
foreach(spec ${DF_GOLDEN_SETS})
  string(REPLACE "|" ";" spec "${spec}")
  list(GET spec 0 np)
  list(GET spec 1 filt)
  math(EXPR i "${i} + 1")
  add_test(NAME mpi_golden_n${np}_${i}
    COMMAND ${DF_MPIEXEC} -n ${np} $<TARGET_FILE:test_mpi_golden> ${filt}
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(mpi_golden_n${np}_${i} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 1500
    LABELS "mpi" ENVIRONMENT "${DF_MPI_ENV}")
endforeach()

# Failure paths: non-zero exit on every rank with a message, never a hang (timeout 60 s -> 124
# counts as a failure of the test).
df_executable(test_mpi_fail tests ${CMAKE_CURRENT_LIST_DIR}/test_mpi_fail.c)
foreach(spec "badcfg;3;setup failed.*the largest N for this size is 4" "badshape;2;multiple of 2"
             "error;2;simulated model failure" "die;2;exiting abruptly")
  list(GET spec 0 mode)
  list(GET spec 1 np)
  list(GET spec 2 msg)
  add_test(NAME mpi_fail_${mode}
    COMMAND sh -c "timeout 60 ${MPIEXEC_EXECUTABLE} --oversubscribe -n ${np} $<TARGET_FILE:test_mpi_fail> ${mode} > mpi_fail_${mode}.log 2>&1; rc=$?; cat mpi_fail_${mode}.log; echo exit=$rc; [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -Eq '${msg}' mpi_fail_${mode}.log"
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(mpi_fail_${mode} PROPERTIES TIMEOUT 90 LABELS "mpi;fast"
    ENVIRONMENT "${DF_MPI_ENV}")
endforeach()

# UNet-level timing (sync vs async steps, progress strategies); not a test.
df_executable(df-mpi-unet-bench tests ${CMAKE_CURRENT_LIST_DIR}/mpi_unet_bench.c)

# Tensor parallelism (--parallelism tensor) on the tiny SDXL fixture vs the single device:
# N = 1 unit checks, N = 2 / 4 split and no-split runs, N = 3 (degree 3 does not divide the 32
# GroupNorm groups) must be refused at setup; `bad` checks the non-zero exit on every rank.
df_mpi_test(test_mpi_tp ${CMAKE_CURRENT_LIST_DIR}/test_mpi_tp.c 2 3 4)
add_test(NAME mpi_tp_bad_degree
  COMMAND sh -c "timeout 60 ${MPIEXEC_EXECUTABLE} --oversubscribe -n 3 $<TARGET_FILE:test_mpi_tp> bad > mpi_tp_bad.log 2>&1; rc=$?; cat mpi_tp_bad.log; echo exit=$rc; [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'setup failed: .*tensor parallelism of degree 3' mpi_tp_bad.log"
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(mpi_tp_bad_degree PROPERTIES TIMEOUT 90 LABELS "mpi;fast"
  ENVIRONMENT "${DF_MPI_ENV}" FIXTURES_REQUIRED df_models)

# Uneven bands and band weights through the distrifuse binary (tests/mpi/uneven_test.sh):
# synchronous N = 3, 5, 6, 7 == the single process on the tiny SDXL fixture made at test time.
if(TARGET distrifuse-cli)
  set(DF_UNEVEN_ENV "DF_BIN=${CMAKE_BINARY_DIR}/distrifuse;DF_MAKE_MODEL=${CMAKE_BINARY_DIR}/tools/df-make-model;DF_MPIEXEC=${MPIEXEC_EXECUTABLE};${DF_MPI_ENV}")
  foreach(case 3 5 6 7 weights toomany)
    add_test(NAME mpi_uneven_${case}
      COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/uneven_test.sh ${case}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(mpi_uneven_${case} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
      LABELS "mpi" ENVIRONMENT "${DF_UNEVEN_ENV}")
  endforeach()
endif()

# Patch-parallel VAE decode (src/runtime/vae_dist.c) == the whole decode, tiny SDXL and SD 1.5
# VAEs made at test time (fixture mpi_vae_models), 1 process and N = 2, 3, 4 (oversubscribed).
df_executable(test_mpi_vae tests ${CMAKE_CURRENT_LIST_DIR}/test_mpi_vae.c)
if(TARGET df-make-model)
  set(DF_VAE_MODELS ${CMAKE_BINARY_DIR}/test_models)
  add_test(NAME mpi_vae_models
    COMMAND sh -c "mkdir -p ${DF_VAE_MODELS} && for a in tiny-sdxl tiny-sd15; do [ -f ${DF_VAE_MODELS}/vae-$a/vae/config.json ] || $<TARGET_FILE:df-make-model> --arch $a --out ${DF_VAE_MODELS}/vae-$a > /dev/null || exit 1; done"
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(mpi_vae_models PROPERTIES FIXTURES_SETUP mpi_vae_models TIMEOUT 300
    LABELS "mpi")
  foreach(arch tiny-sdxl tiny-sd15)
    add_test(NAME mpi_vae_${arch}_single COMMAND test_mpi_vae ${DF_VAE_MODELS}/vae-${arch}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(mpi_vae_${arch}_single PROPERTIES FIXTURES_REQUIRED mpi_vae_models
      TIMEOUT 300 LABELS "mpi" ENVIRONMENT "${DF_MPI_ENV}")
    foreach(np 2 3 4)
      add_test(NAME mpi_vae_${arch}_n${np}
        COMMAND ${DF_MPIEXEC} -n ${np} $<TARGET_FILE:test_mpi_vae> ${DF_VAE_MODELS}/vae-${arch}
        WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
      set_tests_properties(mpi_vae_${arch}_n${np} PROPERTIES FIXTURES_REQUIRED mpi_vae_models
        TIMEOUT 300 LABELS "mpi" ENVIRONMENT "${DF_MPI_ENV}")
    endforeach()
  endforeach()
endif()
# The parallel decode through distrifuse / distrifuse-bench (default vs --no-parallel-vae,
# --vae-tiling, the decode split in the bench's text and JSON).
if(TARGET distrifuse-cli AND TARGET distrifuse-bench AND TARGET df-make-model)
  add_test(NAME mpi_vae_cli COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/vae_cli_test.sh
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(mpi_vae_cli PROPERTIES TIMEOUT 300 LABELS "mpi;cli" ENVIRONMENT
    "${DF_MPI_ENV};DF_BIN=${CMAKE_BINARY_DIR}/distrifuse;DF_BENCH=${CMAKE_BINARY_DIR}/distrifuse-bench;DF_MAKE_MODEL=$<TARGET_FILE:df-make-model>;DF_COMPARE=$<TARGET_FILE:df-compare>;DF_MPIEXEC=${MPIEXEC_EXECUTABLE} --oversubscribe")
endif()
