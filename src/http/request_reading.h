// Reading one request within the server's limits: the limits, the parser they configure, and the
// answer for a request that could not be read. Pure and synchronous (no sockets, no coroutines),
// so the fuzz target tests/fuzz/fuzz_http_request.cpp drives the same configuration the server
// uses (http/server.cpp) with arbitrary bytes.
#pragma once

#include "http/api_error.h"

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace llmq::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// A request body read into a std::string that grows with what arrives. Beast's string_body
// reserves the declared Content-Length as soon as the headers are in, so a thousand clients that
// each declare 1 MiB and send nothing would hold a GiB for the body timeout.
struct ArrivingStringBody : bhttp::string_body {
  class reader : public bhttp::string_body::reader {
   public:
    using bhttp::string_body::reader::reader;
    void init(const boost::optional<std::uint64_t>& /*length*/, beast::error_code& ec) { ec = {}; }
  };
};

using Request = bhttp::request<ArrivingStringBody>;
using Response = bhttp::response<bhttp::string_body>;
using RequestParser = bhttp::request_parser<ArrivingStringBody>;

struct ServerLimits {
  std::uint64_t max_body_bytes = 1 << 20;           // larger bodies: 413
  std::uint32_t max_header_bytes = 16 << 10;        // larger headers: 431
  std::chrono::milliseconds header_timeout{10000};  // a request's headers must arrive in this,
                                                    // from accept (a new connection) or from
                                                    // the first byte (a kept-alive one)
  std::chrono::milliseconds body_timeout{30000};    // and its body in this, after the headers
  std::chrono::milliseconds idle_timeout{60000};    // a keep-alive connection may idle this long
  std::chrono::milliseconds send_timeout{60000};    // one write may wait this long for the client
  std::size_t max_connections = 1024;               // past it: 503 and close, before reading
  std::size_t max_connections_per_client = 0;       // past it: 429 and close; 0: no limit
  // The client an address belongs to for that limit (its IPv6 /64); empty: not limited (a
  // trusted proxy). Unset: the address itself.
  std::function<std::string(const std::string& address)> client_of = {};
};

// A JSON response with the given status, body and keep-alive flag.
Response json_response(bhttp::status status, std::string body, bool keep_alive);

// Applies the header and body limits to a parser that has not read anything yet.
void apply_limits(RequestParser& parser, const ServerLimits& limits);

// The buffer a connection reads into, where bytes the parser has not consumed wait. Capped at
// the header limit: Beast bounds the header but neither a chunk-size line nor the trailer of a
// chunked body, which would otherwise grow the buffer for as long as the body timeout allows.
// A parse that needs more than the cap fails with buffer_overflow.
beast::flat_buffer read_buffer(const ServerLimits& limits);

// Called once the header is read (`header_bytes` of it): header_limit when the header as a
// whole is over the limit (Beast applies its limit to the request line and to the fields
// separately), body_limit when the declared Content-Length is over the limit (refused before a
// byte of the body is read), else no error.
beast::error_code check_header(const RequestParser& parser, std::size_t header_bytes,
                               const ServerLimits& limits);

// True when `ec` means the client went away or timed out: no answer is due.
bool is_disconnect(const beast::error_code& ec);

// The answer for a request that could not be read: 431 headers_too_large, 413 body_too_large,
// else 400 bad_http (a chunk-size line or trailer over the buffer's cap among them), each with
// the contract's JSON error body; the connection closes after it.
Response read_error_response(const beast::error_code& ec, const ServerLimits& limits);
// The refusal read_error_response sends, before it is put in the contract's JSON (a Handler
// may shape it for its route: Handler::unread_refusal).
ApiError read_error(const beast::error_code& ec, const ServerLimits& limits);

}  // namespace llmq::http
