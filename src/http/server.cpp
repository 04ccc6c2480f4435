#include "http/server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include "http/api_error.h"
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/chunk_encode.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <sstream>
#include <tuple>
#include <variant>

#if defined(__linux__)
#include <linux/sockios.h>
#endif

namespace llmq::http {
namespace {

using namespace boost::asio::experimental::awaitable_operators;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

// The first read on a connection waiting for a request: enough for most requests' headers.
constexpr std::size_t kFirstRead = 1024;
// How long a refused connection is drained before it is closed (see linger_and_close).
constexpr auto kRefusalLinger = std::chrono::seconds(1);
// Writing the answer to a request the server could not read.
constexpr auto kRefusalWrite = std::chrono::seconds(5);

bool is_out_of_descriptors(const beast::error_code& ec) {
  return ec.category() == boost::system::system_category() &&
         (ec.value() == EMFILE || ec.value() == ENFILE);
}

// The 503 for a connection past the limit, serialized once.
std::string connection_refusal(const ApiError& err) {
  Response res = json_response(static_cast<bhttp::status>(err.status), err.to_json(), false);
  res.set(bhttp::field::retry_after, "1");
  std::ostringstream out;
  out << res;
  return out.str();
}

// Writes the refusal without waiting; true when all of it went out (it always fits in the
// send buffer of a new connection).
bool write_now(asio::ip::tcp::socket& socket, const std::string& bytes) {
  beast::error_code ec;
  socket.non_blocking(true, ec);
  if (ec) return false;
  const std::size_t n = socket.write_some(asio::buffer(bytes), ec);
  return !ec && n == bytes.size();
}

// After the 503 went out: reads and drops what the client still sends, for a moment. Closing a
// socket with unread input resets it, and a reset can destroy the 503 before the client reads it.
asio::awaitable<void> linger_and_close(asio::ip::tcp::socket socket, ConnectionGate::Ticket) {
  beast::tcp_stream stream(std::move(socket));
  stream.expires_after(kRefusalLinger);
  std::array<char, 512> sink;
  while (true) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(sink), kTuple);
    if (ec) break;
  }
  beast::error_code ignored;
  stream.socket().close(ignored);
}

enum class WriteResult { ok, failed, timed_out };

// Writes `buffers` unless the client has not taken them within `timeout`.
template <class Buffers>
asio::awaitable<WriteResult> write_within(asio::ip::tcp::socket& socket, asio::steady_timer& timer,
                                          std::chrono::milliseconds timeout,
                                          const Buffers& buffers) {
  timer.expires_after(timeout);
  auto write = asio::async_write(socket, buffers, kTuple);
  auto wait = timer.async_wait(kTuple);
  auto race = std::move(write) || std::move(wait);
  const auto result = co_await std::move(race);
  if (result.index() == 1) co_return WriteResult::timed_out;
  const auto& [ec, n] = std::get<0>(result);
  co_return ec ? WriteResult::failed : WriteResult::ok;
}

}  // namespace

const char* close_reason_name(CloseReason reason) {
  switch (reason) {
    case CloseReason::header_timeout: return "header_timeout";
    case CloseReason::body_timeout: return "body_timeout";
    case CloseReason::idle_timeout: return "idle_timeout";
    case CloseReason::send_timeout: return "send_timeout";
    case CloseReason::slow_reader: return "slow_reader";
  }
  return "unknown";
}

// ---- Exchange ------------------------------------------------------------------------------

Exchange::Exchange(beast::tcp_stream& stream, beast::flat_buffer& buffer, const Request& request,
                   std::chrono::milliseconds send_timeout)
    : stream_(stream),
      buffer_(buffer),
      send_timeout_(send_timeout),
      send_timer_(stream.get_executor()),
      keep_alive_(request.keep_alive()),
      head_(request.method() == bhttp::verb::head) {}

void Exchange::add_header(std::string name, std::string value) {
  headers_.emplace_back(std::move(name), std::move(value));
}

asio::awaitable<void> Exchange::reply(Response response) {
  status_ = static_cast<int>(response.result_int());
  for (const auto& [name, value] : headers_) response.insert(name, value);
  response.keep_alive(keep_alive_ && response.keep_alive());
  keep_alive_ = response.keep_alive();
  stream_.expires_after(send_timeout_);
  beast::error_code ec;
  if (head_) {
    response.prepare_payload();  // Content-Length of the body that is not sent
    bhttp::response_serializer<bhttp::string_body> header_only{response};
    auto [header_ec, n] = co_await bhttp::async_write_header(stream_, header_only, kTuple);
    ec = header_ec;
  } else {
    auto [write_ec, n] = co_await bhttp::async_write(stream_, response, kTuple);
    ec = write_ec;
  }
  if (ec == beast::error::timeout) close_for(CloseReason::send_timeout);
  if (ec) keep_alive_ = false;
}

asio::awaitable<bool> Exchange::open_stream(bhttp::status status, std::string_view content_type,
                                            std::string_view request_id) {
  keep_alive_ = false;
  status_ = static_cast<int>(status);
  bhttp::response<bhttp::empty_body> head{status, 11};
  head.set(bhttp::field::content_type, content_type);
  head.set(bhttp::field::cache_control, "no-cache");
  head.set(bhttp::field::server, "llmq");
  head.set("X-Accel-Buffering", "no");
  if (!request_id.empty()) head.set("X-Request-Id", request_id);
  for (const auto& [name, value] : headers_) head.insert(name, value);
  head.keep_alive(false);
  head.chunked(true);
  bhttp::response_serializer<bhttp::empty_body> sr{head};
  stream_.expires_after(send_timeout_);
  auto [ec, n] = co_await bhttp::async_write_header(stream_, sr, kTuple);
  stream_.expires_never();
  if (ec == beast::error::timeout) close_for(CloseReason::send_timeout);
  co_return !ec;
}

asio::awaitable<bool> Exchange::write_chunk(std::string_view data) {
  if (data.empty()) co_return true;  // an empty chunk would end the body
  const auto chunk = bhttp::make_chunk(asio::buffer(data));  // named: see GCC 12 note in api/
  const WriteResult result =
      co_await write_within(stream_.socket(), send_timer_, send_timeout_, chunk);
  if (result == WriteResult::timed_out) close_for(CloseReason::send_timeout);
  co_return result == WriteResult::ok;
}

asio::awaitable<void> Exchange::close_stream() {
  const auto last = bhttp::make_chunk_last();
  const WriteResult result =
      co_await write_within(stream_.socket(), send_timer_, send_timeout_, last);
  if (result == WriteResult::timed_out) close_for(CloseReason::send_timeout);
}

asio::awaitable<void> Exchange::client_gone(bool writes_will_tell) {
  // The buffer is capped (read_buffer): when pipelined bytes already fill it, there is no room
  // to watch with, and watching would stop at the first byte anyway.
  const std::size_t room = std::min<std::size_t>(4096, buffer_.max_size() - buffer_.size());
  if (room > 0) {
    auto [ec, n] = co_await stream_.socket().async_read_some(buffer_.prepare(room), kTuple);
    if (ec == asio::error::operation_aborted) co_return;  // the race was won by the other side
    // End of stream is a client that shut down its sending side: gone, or only done sending
    // (a half-close). Where the answer streams, its next write tells which; a reset is gone.
    if (ec && !(ec == asio::error::eof && writes_will_tell)) {
      client_left_ = true;
      co_return;
    }
    if (!ec) {
      // The client sent more (a pipelined request): keep the bytes for the next read and stop
      // watching, since reading further would consume requests.
      buffer_.commit(n);
    }
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

std::size_t Exchange::unsent_bytes() const {
#if defined(SIOCOUTQ)
  int queued = 0;
  if (::ioctl(stream_.socket().native_handle(), SIOCOUTQ, &queued) == 0 && queued > 0) {
    return static_cast<std::size_t>(queued);
  }
#endif
  return 0;
}

void Exchange::close_for(CloseReason reason) {
  keep_alive_ = false;
  if (!closed_for_) closed_for_ = reason;
}

// ---- Server --------------------------------------------------------------------------------

struct Server::ReadOutcome {
  enum class Kind { request, refuse, stop, answered_head };
  Kind kind;
  beast::error_code error;         // refuse: why the request could not be read
  std::optional<CloseReason> cut;  // stop: the limit that ends the connection, if one did
  std::optional<Response> answer = {};  // answered_head: the handler's refusal on the headers
};

Server::Server(asio::io_context& io, Handler& handler, ServerLimits limits,
               RefusalObserver on_refusal)
    : Server(io, handler, limits, ServerObserver{std::move(on_refusal), {}, {}}) {}

Server::Server(asio::io_context& io, Handler& handler, ServerLimits limits,
               ServerObserver observer)
    : io_(io),
      handler_(handler),
      limits_(limits),
      observer_(std::move(observer)),
      refusal_(connection_refusal(
          {503, "too_many_connections",
           "the server holds its maximum number of connections; retry later", {}})),
      client_refusal_(connection_refusal(
          {429, "too_many_client_connections",
           "this client holds its maximum number of connections (--client-max-connections); "
           "close one, or retry later",
           {}})),
      gate_(ConnectionGate::make(limits.max_connections)),
      clients_(ClientConnections::make(limits.max_connections_per_client)),
      live_(std::make_shared<LiveConnections>()),
      acceptor_(io),
      spare_fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

Server::~Server() {
  if (spare_fd_ >= 0) ::close(spare_fd_);
}

asio::ip::tcp::endpoint Server::listen(const std::string& host, std::uint16_t port) {
  const asio::ip::tcp::endpoint endpoint{asio::ip::make_address(host), port};
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  acceptor_.non_blocking(true);  // shed_connection() accepts without waiting
  asio::co_spawn(io_, accept_loop(), asio::detached);
  return acceptor_.local_endpoint();
}

void Server::stop() {
  beast::error_code ec;
  acceptor_.close(ec);
}

void Server::close_connections() { live_->shut_all(); }

asio::awaitable<void> Server::accept_loop() {
  while (acceptor_.is_open()) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(io_), kTuple);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec && is_out_of_descriptors(ec) && shed_connection()) continue;
    if (ec) {
      // Out of descriptors with no spare left, and the like: back off instead of spinning.
      spdlog::warn("accept failed: {}", ec.message());
      asio::steady_timer pause(io_, std::chrono::milliseconds(50));
      co_await pause.async_wait(kTuple);
      continue;
    }
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    std::optional<ClientConnections::Hold> hold;
    if (limits_.max_connections_per_client > 0) {
      const auto peer = socket.remote_endpoint(ec);
      const std::string client =
          ec ? std::string() : limits_.client_of ? limits_.client_of(peer.address().to_string())
                                                 : peer.address().to_string();
      if (!client.empty()) {
        hold = clients_->try_hold(client);
        if (!hold) {
          if (observer_.on_client_refused) observer_.on_client_refused();
          refuse_connection(std::move(socket), client_refusal_);
          continue;
        }
      }
    }
    std::optional<ConnectionGate::Ticket> ticket = gate_->try_open();
    if (!ticket) {
      if (observer_.on_connection_refused) observer_.on_connection_refused();
      refuse_connection(std::move(socket), refusal_);
      continue;
    }
    const auto executor = socket.get_executor();
    asio::co_spawn(executor,
                   serve_connection(std::move(socket), std::move(*ticket), std::move(hold)),
                   asio::detached);
  }
}

void Server::refuse_connection(asio::ip::tcp::socket socket, const std::string& answer) {
  spdlog::debug("connection refused: {} open", gate_->open());
  std::optional<ConnectionGate::Ticket> ticket;
  if (write_now(socket, answer)) ticket = gate_->try_refuse();
  beast::error_code ignored;
  socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  if (!ticket) {
    socket.close(ignored);
    return;
  }
  const auto executor = socket.get_executor();
  asio::co_spawn(executor, linger_and_close(std::move(socket), std::move(*ticket)),
                 asio::detached);
}

bool Server::shed_connection() {
  if (spare_fd_ < 0) spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // lost last time
  if (spare_fd_ < 0) return false;
  ::close(spare_fd_);
  beast::error_code ec;
  asio::ip::tcp::socket socket(io_);
  acceptor_.accept(socket, ec);  // non-blocking: would_block when the client gave up already
  if (!ec) {
    if (observer_.on_connection_refused) observer_.on_connection_refused();
    write_now(socket, refusal_);  // best effort: no descriptor to spare for lingering
    socket.close(ec);
  }
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return true;
}

void Server::report_close(CloseReason reason) const {
  spdlog::debug("connection closed: {}", close_reason_name(reason));
  if (observer_.on_close) observer_.on_close(reason);
}

asio::awaitable<Server::ReadOutcome> Server::read_request(
    beast::tcp_stream& stream, beast::flat_buffer& buffer,
    RequestParser& parser, bool first) {
  using Kind = ReadOutcome::Kind;
  // A new connection's header deadline runs from accept (set by the caller); a kept-alive one
  // idles until the next request's first byte, and its header deadline runs from there.
  if (buffer.size() == 0) {
    if (!first) stream.expires_after(limits_.idle_timeout);
    auto [ec, n] = co_await stream.async_read_some(buffer.prepare(kFirstRead), kTuple);
    if (ec == beast::error::timeout) {
      co_return ReadOutcome{Kind::stop, {},
                            first ? CloseReason::header_timeout : CloseReason::idle_timeout};
    }
    if (ec) co_return ReadOutcome{Kind::stop, {}, std::nullopt};
    buffer.commit(n);
  }
  if (!first) stream.expires_after(limits_.header_timeout);
  auto [ec, n] = co_await bhttp::async_read_header(stream, buffer, parser, kTuple);
  if (!ec) ec = check_header(parser, n, limits_);  // the whole header; a body refused unread
  if (!ec) {
    beast::error_code peer_ec;
    const auto peer = stream.socket().remote_endpoint(peer_ec);
    HeadVerdict verdict =
        handler_.check_head(parser.get(), peer_ec ? std::string() : peer.address().to_string());
    if (verdict.refusal) {
      co_return ReadOutcome{Kind::answered_head, {}, std::nullopt, std::move(verdict.refusal)};
    }
    if (verdict.max_body_bytes < limits_.max_body_bytes) {
      parser.body_limit(verdict.max_body_bytes);
      if (parser.content_length() && *parser.content_length() > verdict.max_body_bytes)
        ec = bhttp::error::body_limit;
    }
  }
  if (!ec) {
    stream.expires_after(limits_.body_timeout);
    std::tie(ec, n) = co_await bhttp::async_read(stream, buffer, parser, kTuple);
    if (ec == beast::error::timeout) {
      co_return ReadOutcome{Kind::stop, {}, CloseReason::body_timeout};
    }
  }
  if (ec == beast::error::timeout) {
    co_return ReadOutcome{Kind::stop, {}, CloseReason::header_timeout};
  }
  if (ec && is_disconnect(ec)) co_return ReadOutcome{Kind::stop, {}, std::nullopt};
  if (ec) co_return ReadOutcome{Kind::refuse, ec, std::nullopt};
  stream.expires_never();
  co_return ReadOutcome{Kind::request, {}, std::nullopt};
}

asio::awaitable<void> Server::serve_connection(
    asio::ip::tcp::socket socket, ConnectionGate::Ticket /*held until the end*/,
    std::optional<ClientConnections::Hold> /*likewise*/) {
  beast::tcp_stream stream(std::move(socket));
  const LiveConnections::Registration live(live_, co_await asio::this_coro::executor, stream);
  beast::flat_buffer buffer = read_buffer(limits_);
  std::optional<CloseReason> cut;
  stream.expires_after(limits_.header_timeout);  // a new connection owes its first headers
  try {
    for (bool first = true;; first = false) {
      RequestParser parser;
      apply_limits(parser, limits_);
      const ReadOutcome read = co_await read_request(stream, buffer, parser, first);
      if (read.kind == ReadOutcome::Kind::stop) {
        cut = read.cut;
        break;
      }
      if (read.kind == ReadOutcome::Kind::answered_head) {
        stream.expires_after(kRefusalWrite);
        Response answer = std::move(*read.answer);  // named: GCC 12, see api/
        answer.keep_alive(false);
        co_await bhttp::async_write(stream, answer, kTuple);
        break;
      }
      if (read.kind == ReadOutcome::Kind::refuse) {
        stream.expires_after(kRefusalWrite);
        // A body over the limit is known from a whole header (its Content-Length).
        const bool have_head =
            parser.is_header_done() || read.error == bhttp::error::body_limit;
        // named: GCC 12, see api/
        Response refusal = handler_.unread_refusal(read_error(read.error, limits_),
                                                   have_head ? &parser.get() : nullptr);
        if (observer_.on_refusal) observer_.on_refusal(static_cast<int>(refusal.result_int()));
        co_await bhttp::async_write(stream, refusal, kTuple);
        break;
      }
      const Request request = parser.release();
      Exchange exchange(stream, buffer, request, limits_.send_timeout);
      co_await handler_.handle(request, exchange);
      cut = exchange.closed_for();
      if (!exchange.keep_alive()) break;
    }
  } catch (const std::exception& e) {
    spdlog::debug("connection ended: {}", e.what());
  }
  if (cut) report_close(*cut);
  beast::error_code ignored;
  if (cut == CloseReason::send_timeout || cut == CloseReason::slow_reader) {
    // Drop what the client never took instead of leaving it to the kernel to deliver.
    stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
  } else {
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
  stream.socket().close(ignored);
}

}  // namespace llmq::http
