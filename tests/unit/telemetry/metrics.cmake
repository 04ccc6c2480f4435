# Unit tests of the Prometheus metrics; included from tests/unit/CMakeLists.txt.
target_sources(llmq_unit_tests PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/build_info_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/metrics_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/window_quantiles_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/service_metrics_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/resource_sampler_test.cpp
)
