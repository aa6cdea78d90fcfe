# The kernel tests once more per variant (src/core/cpu.h): NAME_ref, NAME_avx2, NAME_avx512.
# The plain NAME test (from the tests/test_*.c loop) runs the variant `auto` picks; a variant
# the CPU lacks skips (exit 77 with a message).
foreach(t kernels_misc kernels_conv kernels_winograd kernels_bf16)
  foreach(v ref avx2 avx512)
    add_test(NAME ${t}_${v} COMMAND test_${t} --cpu ${v} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(${t}_${v} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
      LABELS "unit;kernels")
  endforeach()
endforeach()

# bench/vs_sdcpp.sh with a stand-in sd-cli (parsing, alternating runs, JSON line).
add_test(NAME vs_sdcpp_script COMMAND bash ${CMAKE_SOURCE_DIR}/tests/vs_sdcpp_test.sh
         ${CMAKE_BINARY_DIR} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(vs_sdcpp_script PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "cli")

# --compute bf16 on two golden pipelines (final latents within rel-L2 5e-2 of diffusers' f32;
# skipped without AVX512_BF16 or without ../shared/golden).
if(TARGET test_pipeline)
  foreach(case sdxl/pipe_euler_512 sd15/pipe_pndm_256)
    string(REPLACE "/" "." tname ${case})
    add_test(NAME pipeline_bf16.${tname} COMMAND test_pipeline --compute bf16 ${case}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(pipeline_bf16.${tname} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
      LABELS "golden;slow")
  endforeach()
endif()
