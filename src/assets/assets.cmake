# The embedded assets (see assets/assets.h): regenerated whenever one of the files changes.
set(LLMQ_ASSET_FILES
  "kRequestsIndexTemplate=${PROJECT_SOURCE_DIR}/elastic/logs-llmq.requests.json"
  "kRuntimeIndexTemplate=${PROJECT_SOURCE_DIR}/elastic/metrics-llmq.runtime.json"
  "kKibanaSavedObjects=${PROJECT_SOURCE_DIR}/kibana/llmq-saved-objects.ndjson"
  "kStatusPage=${PROJECT_SOURCE_DIR}/src/assets/status_page.html"
)
set(LLMQ_ASSET_PATHS "")
foreach(pair IN LISTS LLMQ_ASSET_FILES)
  string(REGEX REPLACE "^[^=]*=" "" path "${pair}")
  list(APPEND LLMQ_ASSET_PATHS "${path}")
endforeach()
set(LLMQ_ASSETS_CPP "${CMAKE_CURRENT_BINARY_DIR}/assets.cpp")
string(REPLACE ";" "|" escaped_assets "${LLMQ_ASSET_FILES}")  # a list cannot cross VERBATIM
add_custom_command(
  OUTPUT "${LLMQ_ASSETS_CPP}"
  COMMAND ${CMAKE_COMMAND} -DOUT=${LLMQ_ASSETS_CPP} "-DASSETS=${escaped_assets}"
          -P ${PROJECT_SOURCE_DIR}/cmake/embed_assets.cmake
  DEPENDS ${LLMQ_ASSET_PATHS} ${PROJECT_SOURCE_DIR}/cmake/embed_assets.cmake
  COMMENT "Embedding the index templates, Kibana objects and the status page"
  VERBATIM)
target_sources(llmq_core PRIVATE "${LLMQ_ASSETS_CPP}")
