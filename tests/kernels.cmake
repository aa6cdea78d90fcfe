# The kernel tests once more per variant (src/core/cpu.h): NAME_ref, NAME_avx2, NAME_avx512.
# The plain NAME test (from the tests/test_*.c loop) runs the variant `auto` picks; a variant
# the CPU lacks skips (exit 77 with a message).
foreach(t kernels_misc kernels_conv)
  foreach(v ref avx2 avx512)
    add_test(NAME ${t}_${v} COMMAND test_${t} --cpu ${v} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(${t}_${v} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
      LABELS "unit;kernels")
  endforeach()
endforeach()
