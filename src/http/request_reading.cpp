#include "http/request_reading.h"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <utility>

#include "http/api_error.h"

namespace llmq::http {

Response json_response(bhttp::status status, std::string body, bool keep_alive) {
  Response res{status, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::server, "llmq");
  res.keep_alive(keep_alive);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

void apply_limits(RequestParser& parser, const ServerLimits& limits) {
  parser.header_limit(limits.max_header_bytes);
  parser.body_limit(limits.max_body_bytes);
}

beast::flat_buffer read_buffer(const ServerLimits& limits) {
  return beast::flat_buffer(limits.max_header_bytes);
}

beast::error_code check_header(const RequestParser& parser, std::size_t header_bytes,
                               const ServerLimits& limits) {
  if (header_bytes > limits.max_header_bytes) return bhttp::error::header_limit;
  if (parser.content_length() && *parser.content_length() > limits.max_body_bytes) {
    return bhttp::error::body_limit;
  }
  return {};
}

bool is_disconnect(const beast::error_code& ec) {
  namespace aerr = boost::asio::error;
  return ec == bhttp::error::end_of_stream || ec == aerr::eof || ec == aerr::connection_reset ||
         ec == beast::error::timeout || ec == aerr::operation_aborted || ec == aerr::broken_pipe;
}

ApiError read_error(const beast::error_code& ec, const ServerLimits& limits) {
  ApiError err;
  if (ec == bhttp::error::header_limit) {
    err = {431, "headers_too_large",
           "request headers exceed " + std::to_string(limits.max_header_bytes) + " bytes", {}};
  } else if (ec == bhttp::error::body_limit) {
    err = {413, "body_too_large",
           "request body exceeds " + std::to_string(limits.max_body_bytes) + " bytes", {}};
  } else if (ec == bhttp::error::buffer_overflow) {
    err = {400, "bad_http",
           "malformed HTTP request: a chunk-size line or trailer exceeds " +
               std::to_string(limits.max_header_bytes) + " bytes",
           {}};
  } else {
    err = {400, "bad_http", "malformed HTTP request: " + ec.message(), {}};
  }
  return err;
}

Response read_error_response(const beast::error_code& ec, const ServerLimits& limits) {
  const ApiError err = read_error(ec, limits);
  return json_response(static_cast<bhttp::status>(err.status), err.to_json(), false);
}

}  // namespace llmq::http
