// The HTTP/1.1 server: accepts connections, reads requests within limits, and hands each one to
// a Handler together with an Exchange through which the handler answers, whole or streamed.
//
// Limits against hostile clients (ServerLimits): a new connection must deliver its first
// request's headers within the header timeout; a kept-alive one may then idle for the idle
// timeout, and once its next request's first byte arrives, the header timeout starts again;
// a body must arrive within the body timeout. Each of these closes the connection without an
// answer (like nginx and Go's net/http). Past max_connections, a new connection is answered 503
// at once and closed, without reading its request.
//
// Threading: every connection runs as one coroutine on its own strand of the io_context, so a
// handler never runs concurrently with itself for one connection; handlers for different
// connections may run in parallel when the io_context has several threads.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/client_connections.h"
#include "http/connection_gate.h"
#include "http/live_connections.h"
#include "http/request_reading.h"

namespace llmq::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// Why the server closed a connection on its own (the reason of llmq_connections_closed_total).
enum class CloseReason {
  header_timeout,  // the request's headers were not all there in time
  body_timeout,    // its body was not
  idle_timeout,    // a kept-alive connection sent no new request in time
  send_timeout,    // the client took nothing of a write in time
  slow_reader,     // the client reads its stream too slowly: its unsent bytes passed the bound
};
inline constexpr CloseReason kCloseReasons[] = {
    CloseReason::header_timeout, CloseReason::body_timeout, CloseReason::idle_timeout,
    CloseReason::send_timeout, CloseReason::slow_reader};
const char* close_reason_name(CloseReason reason);


// The answering side of one request. Use either reply() once, or open_stream(), write_chunk()…,
// close_stream(). Lives as long as the handler's call.
class Exchange {
 public:
  Exchange(beast::tcp_stream& stream, beast::flat_buffer& buffer, const Request& request,
           std::chrono::milliseconds send_timeout = std::chrono::seconds(60));

  // Sends the whole response; to a HEAD request, only its headers (with the Content-Length
  // the body would have), so a kept-alive connection stays in step.
  asio::awaitable<void> reply(Response response);

  // Starts a chunked response; the connection closes after the stream ends.
  asio::awaitable<bool> open_stream(bhttp::status status, std::string_view content_type,
                                    std::string_view request_id = {});
  // False once the client can no longer be written to, or took nothing for the send timeout.
  asio::awaitable<bool> write_chunk(std::string_view data);
  asio::awaitable<void> close_stream();

  // Completes when the client closes the connection or it breaks. Never completes otherwise;
  // meant to be raced (awaitable operator ||) against the work it would cancel. With
  // `writes_will_tell` (an answer that streams, pings included), a half-close (the client's
  // end of stream) is not taken for gone: a client that really left fails the next write.
  asio::awaitable<void> client_gone(bool writes_will_tell = false);
  bool client_left() const { return client_left_; }

  std::string remote_address() const;
  bool keep_alive() const { return keep_alive_; }
  // A header every answer of this exchange carries (reply() and open_stream() alike), such as
  // the CORS headers of the request's origin. Call before answering.
  void add_header(std::string name, std::string value);

  // The status sent with reply() or open_stream(); 0 while nothing was sent.
  int status() const { return status_; }

  // Bytes written to the connection that the client's TCP stack has not acknowledged yet (the
  // kernel's send queue); 0 where the platform cannot tell.
  std::size_t unsent_bytes() const;
  // Closes the connection after this exchange, for `reason`, which the server counts; any
  // unsent bytes are dropped (reset) rather than left for the kernel to deliver.
  void close_for(CloseReason reason);
  const std::optional<CloseReason>& closed_for() const { return closed_for_; }

 private:
  beast::tcp_stream& stream_;   // the connection
  beast::flat_buffer& buffer_;  // bytes read past the current request (pipelining)
  const std::chrono::milliseconds send_timeout_;  // see ServerLimits
  asio::steady_timer send_timer_;                 // bounds each stream write by send_timeout_
  bool keep_alive_;             // whether the connection stays open after this exchange
  const bool head_;             // a HEAD request: answers carry no body
  bool client_left_ = false;    // set by client_gone()
  int status_ = 0;              // what was answered, for the caller's accounting
  std::optional<CloseReason> closed_for_;  // set when a limit ends the connection
  std::vector<std::pair<std::string, std::string>> headers_;  // added to every answer
};

using RequestHead = bhttp::request_header<>;

// What a handler says of a request whose headers are in and whose body is not read yet.
struct HeadVerdict {
  std::optional<Response> refusal;  // sent at once; the body is never read, the connection closes
  std::uint64_t max_body_bytes = UINT64_MAX;  // this route's own body limit, if tighter
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Called before the body is read, so that a request refused on its headers (no API key) or
  // a route that takes no body costs no body's worth of reading or memory. `peer` is the
  // connection's remote address.
  virtual HeadVerdict check_head(const RequestHead& /*head*/, std::string_view /*peer*/) {
    return {};
  }
  virtual asio::awaitable<void> handle(const Request& request, Exchange& exchange) = 0;
  // The answer to a request the server could not read (431, 413, 400 bad_http): by default the
  // contract's JSON error. `head` is the request's header when it was read whole, else null.
  virtual Response unread_refusal(const ApiError& err, const RequestHead* /*head*/) {
    return json_response(static_cast<bhttp::status>(err.status), err.to_json(), false);
  }
};

// Told the status of every refusal the server answers itself (a request it could not read:
// 400, 413, 431), since those never reach the Handler. Called on the connection's strand.
using RefusalObserver = std::function<void(int status)>;

// What the server tells its owner about connections, for the metrics. Each may be empty; each
// may be called from any of the io_context's threads.
struct ServerObserver {
  RefusalObserver on_refusal = {};                   // a request refused by the server itself
  std::function<void()> on_connection_refused = {};  // past max_connections: 503 (or a bare close)
  std::function<void()> on_client_refused = {};      // past max_connections_per_client: 429
  std::function<void(CloseReason)> on_close = {};    // a connection closed by a limit
};

class Server {
 public:
  Server(asio::io_context& io, Handler& handler, ServerLimits limits,
         RefusalObserver on_refusal = {});
  Server(asio::io_context& io, Handler& handler, ServerLimits limits, ServerObserver observer);
  ~Server();

  // Binds and starts accepting; returns the bound endpoint. Throws on failure to bind.
  asio::ip::tcp::endpoint listen(const std::string& host, std::uint16_t port);
  // Stops accepting new connections.
  void stop();
  // Shuts down every open connection (both directions), so that each one's handler ends now
  // with its socket's error instead of waiting on a client: the last step of a shutdown, once
  // the last events had their moment. Any thread.
  void close_connections();

  // Connections being served now (refused ones not included). Any thread.
  std::size_t open_connections() const { return gate_->open(); }

 private:
  struct ReadOutcome;

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket,
                                         ConnectionGate::Ticket ticket,
                                         std::optional<ClientConnections::Hold> hold);
  asio::awaitable<ReadOutcome> read_request(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                            RequestParser& parser,
                                            bool first);
  // Past a connection limit: `answer` (the 503, or the per-client 429) written at once, then a
  // short lingering close.
  void refuse_connection(asio::ip::tcp::socket socket, const std::string& answer);
  // Out of file descriptors: frees the spare one to accept and refuse a waiting connection,
  // with the 503 if it can be written at once, else a bare close. False without a spare.
  bool shed_connection();
  void report_close(CloseReason reason) const;

  asio::io_context& io_;
  Handler& handler_;
  const ServerLimits limits_;
  const ServerObserver observer_;
  const std::string refusal_;                   // the 503 of a connection past the limit
  const std::string client_refusal_;            // the 429 of one past its client's limit
  const std::shared_ptr<ConnectionGate> gate_;  // open connections vs max_connections
  const std::shared_ptr<ClientConnections> clients_;  // each client's, vs its limit
  const std::shared_ptr<LiveConnections> live_;  // the connections served, for close_connections()
  asio::ip::tcp::acceptor acceptor_;
  int spare_fd_ = -1;  // held back so that a connection can be refused when none is left
};

}  // namespace llmq::http
