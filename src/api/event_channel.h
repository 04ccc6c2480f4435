// EventChannel carries a job's events from the worker thread to the connection that streams
// them. The worker calls on_event(), which posts to the connection's executor; everything else
// runs on that executor, so the buffered events need no lock.
//
// The bytes waiting for one client are bounded (--max-stream-buffer-bytes): the events not yet
// taken (their size in memory) plus, as last reported by the connection, the bytes written but
// not yet taken by the client's TCP stack. A client that lets them pass the bound is a slow
// reader: the channel drops what it holds, keeps nothing more, and says so through
// overflowed(); the connection then cancels the job and closes.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>

#include "queue/job.h"

namespace llmq {

class EventChannel final : public JobSink, public std::enable_shared_from_this<EventChannel> {
 public:
  // `max_bytes`: the bound above; 0 means none.
  EventChannel(boost::asio::any_io_executor executor, std::size_t max_bytes = 0);

  // Any thread.
  void on_event(JobEvent event) override;

  // Connection executor only, as is everything below: the next event, or nullopt if none
  // arrived by `until`.
  boost::asio::awaitable<std::optional<JobEvent>> next(Clock::time_point until);

  // The connection's report of bytes written but not yet taken by the client. True (and
  // overflowed from then on) when they and the events waiting pass the bound.
  bool note_unsent(std::size_t bytes);
  // Completes once the channel has overflowed, or when cancelled; meant to be raced (awaitable
  // operator ||) against the stream. Check overflowed() after.
  boost::asio::awaitable<void> wait_overflow();
  bool overflowed() const { return overflowed_; }
  // Bytes held for the client when the bound was passed (0 before that), for the log.
  std::size_t overflow_bytes() const { return overflow_bytes_; }

  // The memory one waiting event holds, as counted against the bound.
  static std::size_t held_bytes(const JobEvent& event);

 private:
  void push(JobEvent event);
  bool check_bound();

  boost::asio::any_io_executor executor_;  // the connection's strand
  boost::asio::steady_timer wake_;         // cancelled when an event arrives
  boost::asio::steady_timer overflow_;     // cancelled when the bound is passed
  std::deque<JobEvent> events_;            // arrived, not yet taken
  const std::size_t max_bytes_;            // the bound; 0: none
  std::size_t queued_bytes_ = 0;           // held_bytes() of events_
  std::size_t unsent_bytes_ = 0;           // last note_unsent()
  std::size_t overflow_bytes_ = 0;         // queued + unsent when the bound was passed
  bool overflowed_ = false;                // the bound was passed: nothing is kept any more
};

}  // namespace llmq
