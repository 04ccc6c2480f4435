#include "http/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

namespace llmq::http {
namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

}  // namespace

Exchange::Exchange(beast::tcp_stream& stream, beast::flat_buffer& buffer, const Request& request)
    : stream_(stream), buffer_(buffer), keep_alive_(request.keep_alive()) {}

asio::awaitable<void> Exchange::reply(Response response) {
  status_ = static_cast<int>(response.result_int());
  response.keep_alive(keep_alive_ && response.keep_alive());
  keep_alive_ = response.keep_alive();
  stream_.expires_after(std::chrono::seconds(30));
  auto [ec, n] = co_await bhttp::async_write(stream_, response, kTuple);
  if (ec) keep_alive_ = false;
}

asio::awaitable<bool> Exchange::open_stream(bhttp::status status, std::string_view content_type) {
  keep_alive_ = false;
  status_ = static_cast<int>(status);
  bhttp::response<bhttp::empty_body> head{status, 11};
  head.set(bhttp::field::content_type, content_type);
  head.set(bhttp::field::cache_control, "no-cache");
  head.set(bhttp::field::server, "llmq");
  head.set("X-Accel-Buffering", "no");
  head.keep_alive(false);
  head.chunked(true);
  bhttp::response_serializer<bhttp::empty_body> sr{head};
  stream_.expires_after(std::chrono::seconds(30));
  auto [ec, n] = co_await bhttp::async_write_header(stream_, sr, kTuple);
  stream_.expires_never();
  co_return !ec;
}

asio::awaitable<bool> Exchange::write_chunk(std::string_view data) {
  if (data.empty()) co_return true;  // an empty chunk would end the body
  auto [ec, n] = co_await asio::async_write(stream_.socket(),
                                            bhttp::make_chunk(asio::buffer(data)), kTuple);
  co_return !ec;
}

asio::awaitable<void> Exchange::close_stream() {
  co_await asio::async_write(stream_.socket(), bhttp::make_chunk_last(), kTuple);
}

asio::awaitable<void> Exchange::client_gone() {
  // The buffer is capped (read_buffer): when pipelined bytes already fill it, there is no room
  // to watch with, and watching would stop at the first byte anyway.
  const std::size_t room = std::min<std::size_t>(4096, buffer_.max_size() - buffer_.size());
  if (room > 0) {
    auto [ec, n] = co_await stream_.socket().async_read_some(buffer_.prepare(room), kTuple);
    if (ec == asio::error::operation_aborted) co_return;  // the race was won by the other side
    if (ec) {
      client_left_ = true;
      co_return;
    }
    // The client sent more (a pipelined request): keep the bytes for the next read and stop
    // watching, since reading further would consume requests.
    buffer_.commit(n);
  }
  asio::steady_timer forever(co_await asio::this_coro::executor,
                             asio::steady_timer::time_point::max());
  co_await forever.async_wait(kTuple);
}

std::string Exchange::remote_address() const {
  beast::error_code ec;
  const auto ep = stream_.socket().remote_endpoint(ec);
  return ec ? std::string("unknown") : ep.address().to_string();
}

Server::Server(asio::io_context& io, Handler& handler, ServerLimits limits,
               RefusalObserver on_refusal)
    : io_(io), handler_(handler), limits_(limits), on_refusal_(std::move(on_refusal)),
      acceptor_(io) {}

asio::ip::tcp::endpoint Server::listen(const std::string& host, std::uint16_t port) {
  const asio::ip::tcp::endpoint endpoint{asio::ip::make_address(host), port};
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  asio::co_spawn(io_, accept_loop(), asio::detached);
  return acceptor_.local_endpoint();
}

void Server::stop() {
  beast::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> Server::accept_loop() {
  while (acceptor_.is_open()) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(io_), kTuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of file descriptors and the like: back off instead of spinning.
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(50));
      co_await pause.async_wait(kTuple);
      continue;
    }
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    const auto executor = socket.get_executor();
    asio::co_spawn(executor, serve_connection(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> Server::serve_connection(asio::ip::tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer = read_buffer(limits_);
  try {
    while (true) {
      RequestParser parser;
      apply_limits(parser, limits_);
      stream.expires_after(buffer.size() > 0 ? limits_.header_timeout : limits_.idle_timeout);
      auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
      if (ec && (is_disconnect(ec) || (buffer.size() == 0 && n == 0))) break;
      if (!ec) ec = check_header(parser, n, limits_);
      if (!ec) {
        stream.expires_after(limits_.body_timeout);
        std::tie(ec, n) = co_await bhttp::async_read(stream, buffer, parser, kTuple);
        if (ec && is_disconnect(ec)) break;
      }
      if (ec) {
        stream.expires_after(std::chrono::seconds(5));
        Response refusal = read_error_response(ec, limits_);  // named: see GCC 12 note in api/
        if (on_refusal_) on_refusal_(static_cast<int>(refusal.result_int()));
        co_await bhttp::async_write(stream, refusal, kTuple);
        break;
      }
      stream.expires_never();
      const Request request = parser.release();
      Exchange exchange(stream, buffer, request);
      co_await handler_.handle(request, exchange);
      if (!exchange.keep_alive()) break;
    }
  } catch (const std::exception& e) {
    spdlog::debug("connection ended: {}", e.what());
  }
  beast::error_code ignored;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  stream.socket().close(ignored);
}

}  // namespace llmq::http
