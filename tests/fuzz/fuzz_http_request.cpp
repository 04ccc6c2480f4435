// Fuzz target: reading requests off a connection the way http/server.cpp does, with the parser
// configured by http/request_reading.h, over a synchronous in-memory stream
// (tests/unit/http/chunked_stream.h).
//
// Input: one byte R, then the bytes a client sends on one connection (pipelined requests
// allowed). The connection is read twice: with all bytes available at once, and with at most
// R+1 bytes per read. Invariants, with small limits (2 KiB of header, 1 KiB of body) so inputs
// reach them:
//  - nothing crashes, Beast's own assertions included (the preset keeps them on);
//  - a request that reaches the handler has a header within the header limit, a body within the
//    body limit, and a body as long as its Content-Length;
//  - the connection never holds more unparsed bytes than the header limit;
//  - a refusal is 400 bad_http, 413 body_too_large or 431 headers_too_large, with a JSON body;
//  - how the bytes are split across reads changes neither the requests handed on nor whether
//    the connection ends in a refusal.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_check.h"
#include "http/chunked_stream.h"
#include "http/request_reading.h"

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using llmq::http::ServerLimits;

// What the connection did: the requests handed to the handler, then a refusal status or 0.
struct Outcome {
  std::vector<std::string> requests;  // method, target, headers and body of each
  int refusal = 0;
};

std::string describe(const llmq::http::Request& req) {
  std::string out(req.method_string());
  out.append(" ").append(req.target()).append("\n");
  for (const auto& field : req) {
    out.append(field.name_string()).append(": ").append(field.value()).append("\n");
  }
  return out.append("\n").append(req.body());
}

void check_refusal(const llmq::http::Response& res) {
  const int status = static_cast<int>(res.result_int());
  const auto body = nlohmann::json::parse(res.body());  // throws (a crash) when not JSON
  const std::string code = body.at("error").at("code");
  FUZZ_CHECK((status == 400 && code == "bad_http") || (status == 413 && code == "body_too_large") ||
             (status == 431 && code == "headers_too_large"));
  FUZZ_CHECK(!res.keep_alive());
}

// The loop of Server::serve_connection, minus timeouts and the handler.
Outcome read_connection(std::string_view bytes, std::size_t chunk, const ServerLimits& limits) {
  llmq::testing::ChunkedStream stream(bytes, chunk);
  beast::flat_buffer buffer = llmq::http::read_buffer(limits);
  Outcome out;
  while (true) {
    llmq::http::RequestParser parser;
    llmq::http::apply_limits(parser, limits);
    beast::error_code ec;
    const std::size_t header_bytes = bhttp::read_header(stream, buffer, parser, ec);
    FUZZ_CHECK(buffer.size() <= limits.max_header_bytes);
    if (ec && (llmq::http::is_disconnect(ec) || (buffer.size() == 0 && header_bytes == 0))) break;
    if (!ec) ec = llmq::http::check_header(parser, header_bytes, limits);
    if (!ec) {
      bhttp::read(stream, buffer, parser, ec);
      FUZZ_CHECK(buffer.size() <= limits.max_header_bytes);
      if (ec && llmq::http::is_disconnect(ec)) break;
    }
    if (ec) {
      const llmq::http::Response refusal = llmq::http::read_error_response(ec, limits);
      check_refusal(refusal);
      out.refusal = static_cast<int>(refusal.result_int());
      break;
    }
    FUZZ_CHECK(header_bytes <= limits.max_header_bytes);
    const llmq::http::Request req = parser.release();
    FUZZ_CHECK(req.body().size() <= limits.max_body_bytes);
    if (const auto length = req.find(bhttp::field::content_length); length != req.end()) {
      // Digits, maybe with leading zeros; or a list of equal values ("9, 9"), which RFC 9110
      // (8.6) lets a recipient accept as that one value, as Beast does.
      std::string_view text = length->value();
      while (!text.empty()) {
        const std::size_t comma = text.find(',');
        std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        std::uint64_t declared = 0;
        const auto [end, err] = std::from_chars(item.data(), item.data() + item.size(), declared);
        FUZZ_CHECK(err == std::errc{} && end == item.data() + item.size());
        FUZZ_CHECK(declared == req.body().size());
      }
    }
    out.requests.push_back(describe(req));
    if (!req.keep_alive()) break;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  ServerLimits limits;
  limits.max_header_bytes = 2048;
  limits.max_body_bytes = 1024;
  const std::size_t chunk = std::size_t{data[0]} + 1;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  const Outcome whole = read_connection(bytes, bytes.size() + 1, limits);
  const Outcome split = read_connection(bytes, chunk, limits);
  FUZZ_CHECK(whole.requests == split.requests);
  // Which fault of a request with several is reported may depend on the split (Beast checks the
  // header's size while it waits for the header's end, its characters once it has it).
  FUZZ_CHECK((whole.refusal == 0) == (split.refusal == 0));
  return 0;
}
