# Kernel variants (src/core/cpu.h, src/kernels/kvariant.h): the hand-written vector kernels are
# compiled once per variant with that variant's ISA flags and linked into the one library;
# src/kernels/dispatch.c picks one at run time. Included twice by CMakeLists.txt:
#   DF_KV_STAGE = filter: removes the variant sources from DF_SOURCES (before add_library)
#   DF_KV_STAGE = add:    builds the object libraries and adds them to `distrifuse`
set(DF_KV_FILES attention.c conv2d.c convert.c elementwise.c norm.c winograd.c)
set(DF_KV_SOURCES "")
foreach(f ${DF_KV_FILES})
  list(APPEND DF_KV_SOURCES ${CMAKE_SOURCE_DIR}/src/kernels/${f})
endforeach()

if(DF_KV_STAGE STREQUAL "filter")
  list(REMOVE_ITEM DF_SOURCES ${DF_KV_SOURCES})
  return()
endif()

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64|i.86)$")
  set(DF_KV_VARIANTS generic avx2 avx512)
  target_compile_definitions(distrifuse PRIVATE DF_KV_X86=1)
else()
  set(DF_KV_VARIANTS generic)
endif()
# generic: the compiler's baseline (x86-64: SSE2), or -march=native with DF_NATIVE=ON (then
# only runs where the build machine's ISA does; avx2/avx512 keep their own flags either way).
set(DF_KV_FLAGS_generic ${DF_ARCH_FLAGS})
set(DF_KV_FLAGS_avx2 -march=x86-64-v3 -mtune=generic)
set(DF_KV_FLAGS_avx512 -march=x86-64-v4 -mtune=generic -mprefer-vector-width=512)
foreach(v ${DF_KV_VARIANTS})
  add_library(df_kernels_${v} OBJECT ${DF_KV_SOURCES})
  target_compile_definitions(df_kernels_${v} PRIVATE DF_KVARIANT=${v})
  if(v STREQUAL "generic")
    target_compile_definitions(df_kernels_${v} PRIVATE DF_KV_ONCE=1)
  else()
    target_compile_definitions(df_kernels_${v} PRIVATE DF_KV_ONCE=0)
  endif()
  target_compile_options(df_kernels_${v} PRIVATE ${DF_KV_FLAGS_${v}})
  target_include_directories(df_kernels_${v} PRIVATE ${CMAKE_SOURCE_DIR}/include
                             ${CMAKE_SOURCE_DIR}/src ${CBLAS_INCLUDE_DIR} ${CJSON_INCLUDE_DIR})
  if(DF_OPENMP)
    target_link_libraries(df_kernels_${v} PRIVATE OpenMP::OpenMP_C)
  endif()
  set_target_properties(df_kernels_${v} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  target_sources(distrifuse PRIVATE $<TARGET_OBJECTS:df_kernels_${v}>)
endforeach()
