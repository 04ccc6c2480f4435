# Tests of the request-document pipeline. elastic_integration_test runs against a real node
# only when LLMQ_TEST_ELASTIC_URL is set (scripts/test.sh starts one); otherwise it skips.
target_sources(llmq_unit_tests PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/elastic_client_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/elastic_integration_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/journal_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/request_document_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sink_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/spool_test.cpp
)
