// The HTTP server against hostile clients: timeouts, the connection limit, a client that reads
// nothing. Real sockets on loopback; the server runs on its own thread.
#include "http/server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <thread>
#include <vector>

namespace llmq::http {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

// Answers every request with a small JSON body; GET /stream streams 64 KiB chunks until a
// write fails, noting how much the kernel held unsent meanwhile.
class TestHandler final : public Handler {
 public:
  asio::awaitable<void> handle(const Request& request, Exchange& exchange) override {
    if (request.target() == "/stream") {
      co_await exchange.open_stream(bhttp::status::ok, "text/plain");
      const std::string chunk(64 << 10, 'x');
      while (co_await exchange.write_chunk(chunk)) {
        max_unsent = std::max<std::size_t>(max_unsent, exchange.unsent_bytes());
      }
      stream_ended = true;
      co_return;
    }
    Response response = json_response(bhttp::status::ok, "{}", exchange.keep_alive());
    co_await exchange.reply(std::move(response));
  }
  std::atomic<std::size_t> max_unsent{0};
  std::atomic<bool> stream_ended{false};
};

class ServerTest : public testing::Test {
 protected:
  void start(ServerLimits limits) {
    ServerObserver observer;
    observer.on_connection_refused = [this] { ++refused_; };
    observer.on_close = [this](CloseReason r) { ++closed_[static_cast<int>(r)]; };
    server_.emplace(io_, handler_, limits, std::move(observer));
    endpoint_ = server_->listen("127.0.0.1", 0);
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) asio::post(io_, [this] { server_->stop(); });
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  tcp::socket connect(int rcvbuf = 0) {
    tcp::socket s(client_io_);
    s.open(tcp::v4());
    if (rcvbuf > 0) s.set_option(asio::socket_base::receive_buffer_size(rcvbuf));
    s.connect(endpoint_);
    return s;
  }
  static void send(tcp::socket& s, std::string_view data) { asio::write(s, asio::buffer(data)); }

  // Whether the server closed the connection within `limit`; any data is read and dropped.
  static bool closed_within(tcp::socket& s, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    char buf[4096];
    while (Clock::now() < deadline) {
      pollfd p{s.native_handle(), POLLIN, 0};
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 1))) <= 0) continue;
      beast::error_code ec;
      s.read_some(asio::buffer(buf), ec);
      if (ec) return true;
    }
    return false;
  }
  // Reads until the server closes; what it sent.
  static std::string read_to_close(tcp::socket& s) {
    std::string out;
    beast::error_code ec;
    asio::read(s, asio::dynamic_buffer(out), ec);
    return out;
  }
  void wait_open(std::size_t n) {
    const auto deadline = Clock::now() + 5s;
    while (server_->open_connections() != n && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(server_->open_connections(), n);
  }
  // The count of cuts for `r`, once it reaches `at_least` (or after 5 s): the client may see the
  // close a moment before the server has counted it.
  int closed(CloseReason r, int at_least = 1) const {
    const auto deadline = Clock::now() + 5s;
    while (closed_[static_cast<int>(r)].load() < at_least && Clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
    return closed_[static_cast<int>(r)].load();
  }
  static std::chrono::milliseconds since(Clock::time_point t0) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  }

  asio::io_context io_;
  TestHandler handler_;
  std::optional<Server> server_;
  std::thread thread_;
  tcp::endpoint endpoint_;
  asio::io_context client_io_;
  std::atomic<int> refused_{0};
  std::array<std::atomic<int>, 5> closed_{};
};

constexpr std::string_view kKeepAliveGet = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

TEST_F(ServerTest, HeadersThatDoNotArriveInTimeCloseTheConnection) {
  start({.header_timeout = 300ms});
  tcp::socket s = connect();
  const auto t0 = Clock::now();
  send(s, "GET / HTTP/1.1\r\nHost: x\r\n");  // never finished
  EXPECT_TRUE(closed_within(s, 5s));
  EXPECT_GE(since(t0), 250ms);
  EXPECT_EQ(closed(CloseReason::header_timeout), 1);
}

TEST_F(ServerTest, AKeptAliveConnectionIdlesThenIsClosed) {
  start({.header_timeout = 5s, .idle_timeout = 300ms});
  tcp::socket s = connect();
  send(s, kKeepAliveGet);
  const auto t0 = Clock::now();
  EXPECT_TRUE(closed_within(s, 5s));
  EXPECT_GE(since(t0), 250ms);
  EXPECT_EQ(closed(CloseReason::idle_timeout), 1);
  EXPECT_EQ(closed(CloseReason::header_timeout, 0), 0);
}

TEST_F(ServerTest, EachRequestOfAKeptAliveConnectionGetsAFreshHeaderTimeout) {
  start({.header_timeout = 400ms, .idle_timeout = 5s});
  tcp::socket s = connect();
  for (int i = 0; i < 3; ++i) {
    send(s, kKeepAliveGet);
    std::this_thread::sleep_for(600ms);  // longer than the header timeout, within the idle one
  }
  EXPECT_FALSE(closed_within(s, 100ms));
  EXPECT_EQ(closed(CloseReason::header_timeout, 0), 0);
}

TEST_F(ServerTest, ABodyThatDoesNotArriveInTimeClosesTheConnection) {
  start({.header_timeout = 5s, .body_timeout = 300ms});
  tcp::socket s = connect();
  send(s, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
  const auto t0 = Clock::now();
  EXPECT_TRUE(closed_within(s, 5s));
  EXPECT_GE(since(t0), 250ms);
  EXPECT_EQ(closed(CloseReason::body_timeout), 1);
}

TEST_F(ServerTest, ConnectionsPastTheLimitGetA503AtOnce) {
  start({.header_timeout = 10s, .max_connections = 2});
  tcp::socket a = connect();
  tcp::socket b = connect();
  wait_open(2);
  tcp::socket c = connect();
  const auto t0 = Clock::now();
  const std::string answer = read_to_close(c);  // nothing sent: the 503 comes unasked
  EXPECT_LT(since(t0), 2s);
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  EXPECT_NE(answer.find("Retry-After: 1"), std::string::npos) << answer;
  EXPECT_NE(answer.find(R"({"error":{"code":"too_many_connections")"), std::string::npos) << answer;
  EXPECT_EQ(refused_.load(), 1);

  a.close();
  wait_open(1);
  tcp::socket d = connect();
  send(d, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(read_to_close(d).rfind("HTTP/1.1 200", 0), 0u);
}

TEST_F(ServerTest, AClientThatReadsNothingIsCutAfterTheSendTimeout) {
  start({.send_timeout = 300ms});
  tcp::socket s = connect(4096);
  send(s, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto deadline = Clock::now() + 20s;
  while (!handler_.stream_ended && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(handler_.stream_ended);
  EXPECT_GT(handler_.max_unsent.load(), 64u << 10) << "the kernel held what the client left";
  EXPECT_EQ(closed(CloseReason::send_timeout), 1);
  EXPECT_TRUE(closed_within(s, 5s));
}

TEST_F(ServerTest, ClosingTheConnectionsEndsAHandlerStuckInAWrite) {
  // How a shutdown ends the handler of a client that stopped reading, instead of leaving its
  // coroutine suspended when the loop stops (and destroyed after what it refers to).
  start({.send_timeout = 60s});
  tcp::socket s = connect(4096);
  send(s, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  auto deadline = Clock::now() + 20s;
  while (handler_.max_unsent < (64u << 10) && Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(200ms);  // the writer is blocked on a full socket now
  ASSERT_FALSE(handler_.stream_ended);
  const auto asked = Clock::now();
  server_->close_connections();
  deadline = Clock::now() + 5s;
  while (!handler_.stream_ended && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(handler_.stream_ended);
  EXPECT_LT(Clock::now() - asked, 1s);
  EXPECT_EQ(closed(CloseReason::send_timeout), 0);
}

// Open descriptors of this process, by number.
std::vector<int> open_fds() {
  std::vector<int> fds;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    fds.push_back(std::stoi(entry.path().filename().string()));
  }
  std::sort(fds.begin(), fds.end());
  return fds;
}

// The soft RLIMIT_NOFILE under which exactly `free` more descriptors can be opened.
rlim_t limit_leaving(int free) {
  const std::vector<int> fds = open_fds();  // includes the directory's own, closed since
  for (rlim_t limit = 0;; ++limit) {
    const auto below = std::count_if(fds.begin(), fds.end(),
                                     [&](int fd) { return static_cast<rlim_t>(fd) < limit; });
    if (static_cast<std::int64_t>(limit) - below + 1 >= free) return limit;
  }
}

TEST_F(ServerTest, OutOfDescriptorsAConnectionIsStillAnswered) {
  start({.header_timeout = 10s});
  {
    // The client's event loop opens descriptors of its own on first use; one whole exchange,
    // and the server's side of it closed, leaves only the descriptors that stay.
    tcp::socket warm_up = connect();
    send(warm_up, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    read_to_close(warm_up);
  }
  wait_open(0);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // Room for the first client socket, the server's side of it, and the second client socket:
  // the server's accept of the second then fails with EMFILE.
  rlimit low{limit_leaving(3), saved.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::string answer;
  {
    tcp::socket a = connect();
    wait_open(1);
    tcp::socket b = connect();
    answer = read_to_close(b);
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_EQ(answer.rfind("HTTP/1.1 503", 0), 0u) << answer;
  EXPECT_EQ(refused_.load(), 1);
}

}  // namespace
}  // namespace llmq::http
