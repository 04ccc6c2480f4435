#include "http/request_reading.h"

#include <algorithm>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <string>
#include <string_view>
#include <variant>

#include <gtest/gtest.h>

#include "http/chunked_stream.h"

namespace llmq::http {
namespace {

namespace bhttp = boost::beast::http;

ServerLimits small_limits() {
  ServerLimits limits;
  limits.max_header_bytes = 2048;
  limits.max_body_bytes = 1024;
  return limits;
}

struct Read {
  std::variant<Request, beast::error_code> result;  // the request, or why it was refused
  std::size_t most_buffered = 0;                   // the most unparsed bytes held at once
};

// One request read the way Server::serve_connection reads it, `chunk` bytes per read at most.
Read read_one(std::string_view bytes, std::size_t chunk = 1 << 20,
              const ServerLimits& limits = small_limits()) {
  testing::ChunkedStream stream(bytes, chunk);
  beast::flat_buffer buffer = read_buffer(limits);
  RequestParser parser;
  apply_limits(parser, limits);
  Read out;
  beast::error_code ec;
  const std::size_t header_bytes = bhttp::read_header(stream, buffer, parser, ec);
  out.most_buffered = buffer.size();
  if (!ec) ec = check_header(parser, header_bytes, limits);
  if (!ec) bhttp::read(stream, buffer, parser, ec);
  out.most_buffered = std::max(out.most_buffered, buffer.size());
  if (ec) {
    out.result = ec;
  } else {
    out.result = parser.release();
  }
  return out;
}

std::string chunked_post(std::string_view chunks) {
  return "POST /api/v1/req HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
         std::string(chunks);
}

int refusal_status(const Read& read) {
  const auto* ec = std::get_if<beast::error_code>(&read.result);
  if (ec == nullptr) return 0;
  return static_cast<int>(read_error_response(*ec, small_limits()).result_int());
}

TEST(RequestReading, HeaderExactlyAtTheLimitIsRead) {
  std::string head = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  head += std::string(2048 - head.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(head.size(), 2048u);
  EXPECT_TRUE(std::holds_alternative<Request>(read_one(head).result));
}

// Regression from fuzz_http_request: Beast applies its header limit to the request line and to
// the fields separately when both arrive in one read, so a header of up to twice the limit
// passed (a first read of 512 bytes is enough for a 400-byte request line).
TEST(RequestReading, LongRequestLinePlusFieldsOverTheLimitIs431) {
  const std::string head = "GET /" + std::string(400, 'a') + " HTTP/1.1\r\nHost: x\r\nX-Pad: " +
                           std::string(1800, 'b') + "\r\n\r\n";
  for (const std::size_t chunk : {std::size_t{1} << 20, std::size_t{512}, std::size_t{7}}) {
    const Read read = read_one(head, chunk);
    EXPECT_EQ(refusal_status(read), 431) << "chunk " << chunk;
  }
}

// Regressions from fuzz_http_request: Beast bounds neither the trailer of a chunked body nor a
// chunk-size line, so either could grow the connection's buffer (and the trailer the request's
// fields) without limit. The capped read buffer refuses them with 400.
TEST(RequestReading, TrailerOverTheCapIsRefusedWithBoundedMemory) {
  const std::string body = "1\r\na\r\n0\r\nX-T: " + std::string(50000, 't') + "\r\n\r\n";
  for (const std::size_t chunk : {std::size_t{1} << 20, std::size_t{97}}) {
    const Read read = read_one(chunked_post(body), chunk);
    EXPECT_EQ(refusal_status(read), 400);
    EXPECT_LE(read.most_buffered, 2048u);
  }
}

TEST(RequestReading, ChunkExtensionOverTheCapIsRefusedWithBoundedMemory) {
  const Read read = read_one(chunked_post("1;" + std::string(50000, 'e') + "\r\na\r\n0\r\n\r\n"));
  EXPECT_EQ(refusal_status(read), 400);
  EXPECT_LE(read.most_buffered, 2048u);
}

TEST(RequestReading, ChunkedBodyWithSmallTrailerIsRead) {
  const Read read = read_one(chunked_post("2\r\n{}\r\n0\r\nX-T: t\r\n\r\n"), 3);
  ASSERT_TRUE(std::holds_alternative<Request>(read.result));
  EXPECT_EQ(std::get<Request>(read.result).body(), "{}");
}

// Regression from fuzz_http_request: Beast 1.81 asserts on the last chunk of an empty chunked
// body arriving in pieces, which aborted Debug and ASan builds (util/boost_assert.cpp).
TEST(RequestReading, EmptyChunkedBodyReadByteByByte) {
  const Read read = read_one(chunked_post("0\r\n\r\n"), 1);
  ASSERT_TRUE(std::holds_alternative<Request>(read.result));
  EXPECT_EQ(std::get<Request>(read.result).body(), "");
}

TEST(RequestReading, BodyOverTheLimitIs413AndAtTheLimitIsRead) {
  const auto post = [](std::size_t n) {
    return "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n" +
           std::string(n, 'x');
  };
  EXPECT_TRUE(std::holds_alternative<Request>(read_one(post(1024)).result));
  EXPECT_EQ(refusal_status(read_one(post(1025))), 413);
}

TEST(RequestReading, RefusalsCarryTheContractsCodes) {
  const auto code_of = [](const beast::error_code& ec) {
    return read_error_response(ec, small_limits()).body();
  };
  EXPECT_NE(code_of(bhttp::error::header_limit).find("\"headers_too_large\""), std::string::npos);
  EXPECT_NE(code_of(bhttp::error::body_limit).find("\"body_too_large\""), std::string::npos);
  EXPECT_NE(code_of(bhttp::error::buffer_overflow).find("\"bad_http\""), std::string::npos);
  EXPECT_NE(code_of(bhttp::error::bad_method).find("\"bad_http\""), std::string::npos);
}

}  // namespace
}  // namespace llmq::http
