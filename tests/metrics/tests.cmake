# Tests of distrifuse-metrics and src/metrics (included by CMakeLists.txt):
#   metrics_nn              fast operators vs their _ref twins (runs anywhere)
#   metrics_golden.<part>   every value of ../shared/golden/metrics (skips without it)
#   metrics_cli.<case>      the program: pairing, errors, grayscale, --is-gt, --json, stats, --html
if(TARGET distrifuse-metrics)
  df_executable(test_metrics_nn tests ${CMAKE_CURRENT_LIST_DIR}/test_metrics_nn.c)
  target_include_directories(test_metrics_nn PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  add_test(NAME metrics_nn COMMAND test_metrics_nn WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(metrics_nn PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "unit;metrics")

  df_executable(test_metrics_golden tests ${CMAKE_CURRENT_LIST_DIR}/test_metrics_golden.c)
  target_include_directories(test_metrics_golden PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  foreach(part resize psnr lpips lpips_layers inception fid frechet)
    add_test(NAME metrics_golden.${part} COMMAND test_metrics_golden ${part}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(metrics_golden.${part} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
      LABELS "golden;metrics")
  endforeach()

  df_executable(test_metrics_cli tests ${CMAKE_CURRENT_LIST_DIR}/test_metrics_cli.c)
  target_include_directories(test_metrics_cli PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  foreach(case usage pairing counts grayscale is_gt json no_weights golden_cli stats html)
    add_test(NAME metrics_cli.${case} COMMAND test_metrics_cli ${case}
      WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
    set_tests_properties(metrics_cli.${case} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
      LABELS "cli;metrics" ENVIRONMENT "DF_METRICS_BIN=${CMAKE_BINARY_DIR}/distrifuse-metrics")
  endforeach()
endif()

# tools/convert_metric_weights.py on checkpoints laid out like the real ones (needs Debian's
# python3-torch and the goldens; skips otherwise)
if(TARGET distrifuse-metrics AND EXISTS /usr/bin/python3)
  add_test(NAME metrics_convert COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_convert.py
    WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(metrics_convert PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
    LABELS "golden;metrics"
    ENVIRONMENT "DF_METRICS_BIN=${CMAKE_BINARY_DIR}/distrifuse-metrics;DF_SRC=${CMAKE_SOURCE_DIR}")
endif()
