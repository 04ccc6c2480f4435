// EventChannel carries a job's events from the worker thread to the connection that streams
// them. The worker calls on_event(), which posts to the connection's executor; everything else
// runs on that executor, so the buffered events need no lock.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <memory>
#include <optional>

#include "queue/job.h"

namespace llmq {

class EventChannel final : public JobSink, public std::enable_shared_from_this<EventChannel> {
 public:
  explicit EventChannel(boost::asio::any_io_executor executor);

  // Any thread.
  void on_event(JobEvent event) override;

  // Connection executor only: the next event, or nullopt if none arrived by `until`.
  boost::asio::awaitable<std::optional<JobEvent>> next(Clock::time_point until);

 private:
  boost::asio::any_io_executor executor_;  // the connection's strand
  boost::asio::steady_timer wake_;         // cancelled when an event arrives
  std::deque<JobEvent> events_;            // arrived, not yet taken
};

}  // namespace llmq
