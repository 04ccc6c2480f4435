// JobFollower turns a submitted job into the sequence of events its client should see: the
// worker's events as they come, a ping whenever nothing was sent for a ping interval (with the
// job's place in line, true at the moment it is sent), and a deadline_exceeded error for a job
// whose deadline passes while it still waits in the queue.
//
// Runs on the connection's executor; one per job.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "api/event_channel.h"
#include "queue/job_queue.h"

namespace llmq {

class JobFollower {
 public:
  JobFollower(JobPtr job, std::shared_ptr<EventChannel> channel, JobProducer& queue,
              std::chrono::milliseconds ping_interval);

  // The `queued` event that opens every stream.
  QueuedEvent queued() const;

  // The next event. After a DoneEvent or ErrorEvent, finished() is true; don't call again.
  boost::asio::awaitable<JobEvent> next();
  bool finished() const { return finished_; }
  // The code of the error event that ended the job; empty while running or after a done.
  const std::string& error_code() const { return error_code_; }

  // The client left: cancel the job wherever it is. Every job ends with a last event through its
  // sink, a waiting one with error "cancelled" (sent from here), so nothing attached to the job
  // waits for it forever.
  void abandon();

 private:
  PingEvent ping(Clock::time_point now) const;

  JobPtr job_;
  std::shared_ptr<EventChannel> channel_;
  JobProducer& queue_;
  const std::chrono::milliseconds ping_interval_;
  Clock::time_point last_event_;   // when the client was last sent something
  Clock::time_point started_at_;   // when the worker took the job
  bool started_ = false;
  bool watch_deadline_ = true;     // until the queue wait's deadline was acted on
  bool finished_ = false;
  std::string error_code_;
};

}  // namespace llmq
