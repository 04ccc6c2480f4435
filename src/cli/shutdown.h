// Shutdown of a process that serves HTTP clients, on SIGTERM/SIGINT: /readyz turns 503 and new
// requests get 503 shutting_down at once; the work under way goes on until it is done or the
// drain timeout passes; then `finish_work` ends what remains (every job still owed a last event
// gets error shutting_down), and the connections get a moment to write their last events before
// the I/O loop stops. A second signal cuts the drain short. All of it runs on the I/O context;
// `stopping_` guards against two handlers finishing at once (--http-threads).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "api/api_handler.h"
#include "http/server.h"

namespace llmq {

// What the drain asks of the process's work.
struct DrainHooks {
  std::function<std::string()> describe;  // for the log: "3 waiting, 2 running"
  std::function<bool()> idle;             // nothing waiting or running
  std::function<void()> finish_work;      // stop; end what remains with shutting_down
};

class Shutdown {
 public:
  Shutdown(boost::asio::io_context& io, http::Server& server, ServiceState& state, DrainHooks hooks,
           std::chrono::milliseconds drain_timeout);
  // Starts listening for the signals.
  void arm();

 private:
  void on_signal(const boost::system::error_code& ec, int signal);
  void poll_drain();
  void finish();
  void poll_closed();

  static constexpr std::chrono::seconds kCloseWait{2};

  boost::asio::io_context& io_;
  http::Server& server_;
  ServiceState& state_;
  const DrainHooks hooks_;
  const std::chrono::milliseconds drain_timeout_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer drain_timer_;  // polls for idleness while draining
  boost::asio::steady_timer flush_timer_;  // the last events' moment, then the connections' closing
  std::chrono::steady_clock::time_point drain_deadline_{};
  std::chrono::steady_clock::time_point close_deadline_{};  // of the connections' last moment
  std::atomic<bool> stopping_{false};
};

}  // namespace llmq
