# Request documents to Elasticsearch: the spool, the _bulk client and the sinks.
find_package(CURL REQUIRED)
target_sources(llmq_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/dead_letter.cpp
  ${CMAKE_CURRENT_LIST_DIR}/elastic_client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/elastic_sink.cpp
  ${CMAKE_CURRENT_LIST_DIR}/index_templates.cpp
  ${CMAKE_CURRENT_LIST_DIR}/journal.cpp
  ${CMAKE_CURRENT_LIST_DIR}/kibana_import.cpp
  ${CMAKE_CURRENT_LIST_DIR}/refusal_documents.cpp
  ${CMAKE_CURRENT_LIST_DIR}/request_document.cpp
  ${CMAKE_CURRENT_LIST_DIR}/runtime_reporter.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sink_metrics.cpp
  ${CMAKE_CURRENT_LIST_DIR}/spool.cpp
  ${CMAKE_CURRENT_LIST_DIR}/spool_sink.cpp
)
target_link_libraries(llmq_core PUBLIC CURL::libcurl)
