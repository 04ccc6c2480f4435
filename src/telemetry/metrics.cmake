# Prometheus metrics (GET /metrics); included from src/CMakeLists.txt.
target_sources(llmq_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/process_metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/service_metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/window_quantiles.cpp
)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/service_metrics.cpp
  PROPERTIES COMPILE_DEFINITIONS "LLMQ_VERSION=\"${PROJECT_VERSION}\"")
