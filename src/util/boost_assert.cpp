// Boost's assertion handler, for builds with assertions on: llmq_core sets
// BOOST_ENABLE_ASSERT_DEBUG_HANDLER, so without NDEBUG a failed BOOST_ASSERT calls this instead
// of assert(); with NDEBUG (release) it compiles to nothing, as before.
//
// Every assertion aborts as assert() would, except the known false ones below: there the
// library's code is right and its assertion is not, and a client could otherwise abort a Debug
// or ASan server with a well-formed request.
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace boost {
namespace {

bool known_false(std::string_view expr, std::string_view file) {
  // Beast 1.81 basic_parser::parse_chunk_header: the last chunk of an empty chunked body
  // ("0\r\n\r\n") split across reads reaches it with 3 or 4 bytes, which the code after it
  // handles (need_more). Fixed upstream in 2024 (boostorg/beast pull request 2861); found by
  // tests/fuzz/fuzz_http_request.
  return expr == "n >= 5" && file.ends_with("beast/http/impl/basic_parser.ipp");
}

[[noreturn]] void fail(const char* expr, const char* msg, const char* function, const char* file,
                       long line) {
  std::fprintf(stderr, "%s:%ld: %s: Boost assertion `%s' failed%s%s\n", file, line, function, expr,
               msg != nullptr ? ": " : "", msg != nullptr ? msg : "");
  std::abort();
}

}  // namespace

void assertion_failed(const char* expr, const char* function, const char* file, long line) {
  if (known_false(expr, file)) return;
  fail(expr, nullptr, function, file, line);
}

void assertion_failed_msg(const char* expr, const char* msg, const char* function,
                          const char* file, long line) {
  fail(expr, msg, function, file, line);
}

}  // namespace boost
