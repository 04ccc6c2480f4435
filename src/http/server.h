// The HTTP/1.1 server: accepts connections, reads requests within limits, and hands each one to
// a Handler together with an Exchange through which the handler answers, whole or streamed.
//
// Threading: every connection runs as one coroutine on its own strand of the io_context, so a
// handler never runs concurrently with itself for one connection; handlers for different
// connections may run in parallel when the io_context has several threads.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "http/request_reading.h"

namespace llmq::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

// The answering side of one request. Use either reply() once, or open_stream(), write_chunk()…,
// close_stream(). Lives as long as the handler's call.
class Exchange {
 public:
  Exchange(beast::tcp_stream& stream, beast::flat_buffer& buffer, const Request& request);

  asio::awaitable<void> reply(Response response);

  // Starts a chunked response; the connection closes after the stream ends.
  asio::awaitable<bool> open_stream(bhttp::status status, std::string_view content_type);
  // False once the client can no longer be written to.
  asio::awaitable<bool> write_chunk(std::string_view data);
  asio::awaitable<void> close_stream();

  // Completes when the client closes the connection or it breaks. Never completes otherwise;
  // meant to be raced (awaitable operator ||) against the work it would cancel.
  asio::awaitable<void> client_gone();
  bool client_left() const { return client_left_; }

  std::string remote_address() const;
  bool keep_alive() const { return keep_alive_; }
  // The status sent with reply() or open_stream(); 0 while nothing was sent.
  int status() const { return status_; }

 private:
  beast::tcp_stream& stream_;   // the connection
  beast::flat_buffer& buffer_;  // bytes read past the current request (pipelining)
  bool keep_alive_;             // whether the connection stays open after this exchange
  bool client_left_ = false;    // set by client_gone()
  int status_ = 0;              // what was answered, for the caller's accounting
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual asio::awaitable<void> handle(const Request& request, Exchange& exchange) = 0;
};

// Told the status of every refusal the server answers itself (a request it could not read:
// 400, 413, 431), since those never reach the Handler. Called on the connection's strand.
using RefusalObserver = std::function<void(int status)>;

class Server {
 public:
  Server(asio::io_context& io, Handler& handler, ServerLimits limits,
         RefusalObserver on_refusal = {});

  // Binds and starts accepting; returns the bound endpoint. Throws on failure to bind.
  asio::ip::tcp::endpoint listen(const std::string& host, std::uint16_t port);
  // Stops accepting new connections.
  void stop();

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve_connection(asio::ip::tcp::socket socket);

  asio::io_context& io_;
  Handler& handler_;
  const ServerLimits limits_;
  const RefusalObserver on_refusal_;  // may be empty
  asio::ip::tcp::acceptor acceptor_;
};

}  // namespace llmq::http
