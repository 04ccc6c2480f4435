#include "cli/shutdown.h"

#include <spdlog/spdlog.h>

namespace llmq {

Shutdown::Shutdown(boost::asio::io_context& io, http::Server& server, ServiceState& state,
                   DrainHooks hooks, std::chrono::milliseconds drain_timeout)
    : io_(io), server_(server), state_(state), hooks_(std::move(hooks)),
      drain_timeout_(drain_timeout), signals_(io, SIGINT, SIGTERM), drain_timer_(io),
      flush_timer_(io) {}

void Shutdown::arm() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) { on_signal(ec, signal); });
}

void Shutdown::on_signal(const boost::system::error_code& ec, int signal) {
  if (ec) return;
  if (state_.draining.exchange(true)) {
    spdlog::info("signal {} again: stopping now", signal);
    finish();
    return;
  }
  spdlog::info("signal {}: draining for up to {} ms ({})", signal, drain_timeout_.count(),
               hooks_.describe());
  drain_deadline_ = std::chrono::steady_clock::now() + drain_timeout_;
  arm();
  poll_drain();
}

void Shutdown::poll_drain() {
  const bool idle = hooks_.idle();
  if (idle || std::chrono::steady_clock::now() >= drain_deadline_) {
    if (!idle) spdlog::warn("drain timeout: what remains ends with shutting_down ({})", hooks_.describe());
    finish();
    return;
  }
  drain_timer_.expires_after(std::chrono::milliseconds(50));
  drain_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) poll_drain();
  });
}

void Shutdown::finish() {
  if (stopping_.exchange(true)) return;
  drain_timer_.cancel();
  server_.stop();
  hooks_.finish_work();
  // The last events get a moment to be written; then every connection is shut, so that each
  // request's handler ends (and writes its document) rather than wait on its client, and the
  // loop stops once none is left, or after kCloseWait whatever remains.
  flush_timer_.expires_after(std::chrono::milliseconds(300));
  flush_timer_.async_wait([this](const boost::system::error_code&) {
    signals_.cancel();
    server_.close_connections();
    close_deadline_ = std::chrono::steady_clock::now() + kCloseWait;
    poll_closed();
  });
}

void Shutdown::poll_closed() {
  if (server_.open_connections() == 0 || std::chrono::steady_clock::now() >= close_deadline_) {
    io_.stop();
    return;
  }
  flush_timer_.expires_after(std::chrono::milliseconds(10));
  flush_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) poll_closed();
  });
}

}  // namespace llmq
