# Prometheus metrics (GET /metrics); included from src/CMakeLists.txt.
target_sources(llmq_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/build_info.cpp
  ${CMAKE_CURRENT_LIST_DIR}/metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/process_metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/service_metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/window_quantiles.cpp
)
# llmq's version and the commit it was configured at, for llmq_build_info and --version.
execute_process(COMMAND git describe --always --dirty --abbrev=12 WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
  OUTPUT_VARIABLE LLMQ_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT LLMQ_GIT_COMMIT)
  set(LLMQ_GIT_COMMIT unknown)
endif()
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/build_info.cpp
  PROPERTIES COMPILE_DEFINITIONS "LLMQ_VERSION=\"${PROJECT_VERSION}\";LLMQ_GIT_COMMIT=\"${LLMQ_GIT_COMMIT}\"")
