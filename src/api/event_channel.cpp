#include "api/event_channel.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <type_traits>

namespace llmq {
namespace {

constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable);

// Heap bytes of an event's strings (short strings live inside the event itself).
std::size_t text_bytes(const JobEvent& event) {
  return std::visit(
      [](const auto& e) -> std::size_t {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, QueuedEvent>) return e.id.size();
        if constexpr (std::is_same_v<T, StartedEvent>) return e.worker.size();
        if constexpr (std::is_same_v<T, TokenEvent>) {
          std::size_t bytes = e.text.size();
          for (const LogprobEntry& entry : e.logprobs) {
            bytes += sizeof entry + entry.token.size() + entry.top.size() * sizeof(LogprobAlternative);
            for (const LogprobAlternative& alt : entry.top) bytes += alt.token.size();
          }
          return bytes;
        }
        if constexpr (std::is_same_v<T, EmbeddingEvent>) return e.embedding.size() * sizeof(float);
        if constexpr (std::is_same_v<T, DoneEvent>) return e.finish_reason.size();
        if constexpr (std::is_same_v<T, ErrorEvent>) return e.code.size() + e.message.size();
        return 0;
      },
      event);
}

}  // namespace

EventChannel::EventChannel(boost::asio::any_io_executor executor, std::size_t max_bytes)
    : executor_(executor),
      wake_(executor),
      overflow_(executor, boost::asio::steady_timer::time_point::max()),
      max_bytes_(max_bytes) {}

std::size_t EventChannel::held_bytes(const JobEvent& event) {
  return sizeof(JobEvent) + text_bytes(event);
}

void EventChannel::on_event(JobEvent event) {
  boost::asio::post(executor_, [self = shared_from_this(), event = std::move(event)]() mutable {
    self->push(std::move(event));
  });
}

void EventChannel::push(JobEvent event) {
  if (overflowed_) return;  // the job is being cancelled; nothing more is kept
  queued_bytes_ += held_bytes(event);
  events_.push_back(std::move(event));
  if (check_bound()) return;
  wake_.cancel();
}

bool EventChannel::note_unsent(std::size_t bytes) {
  unsent_bytes_ = bytes;
  return check_bound();
}

bool EventChannel::check_bound() {
  if (overflowed_) return true;
  if (max_bytes_ == 0 || queued_bytes_ + unsent_bytes_ <= max_bytes_) return false;
  overflowed_ = true;
  overflow_bytes_ = queued_bytes_ + unsent_bytes_;
  events_.clear();
  events_.shrink_to_fit();
  queued_bytes_ = 0;
  overflow_.cancel();
  return true;
}

boost::asio::awaitable<void> EventChannel::wait_overflow() {
  // The timer never expires: the overflow cancels the wait, or the race it lost does.
  if (overflowed_) co_return;
  co_await overflow_.async_wait(kTuple);
}

boost::asio::awaitable<std::optional<JobEvent>> EventChannel::next(Clock::time_point until) {
  if (events_.empty()) {
    wake_.expires_at(until);
    co_await wake_.async_wait(kTuple);
  }
  if (events_.empty()) co_return std::nullopt;
  JobEvent event = std::move(events_.front());
  events_.pop_front();
  queued_bytes_ -= held_bytes(event);
  co_return event;
}

}  // namespace llmq
