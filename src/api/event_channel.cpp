#include "api/event_channel.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace llmq {

EventChannel::EventChannel(boost::asio::any_io_executor executor)
    : executor_(executor), wake_(executor) {}

void EventChannel::on_event(JobEvent event) {
  boost::asio::post(executor_, [self = shared_from_this(), event = std::move(event)]() mutable {
    self->events_.push_back(std::move(event));
    self->wake_.cancel();
  });
}

boost::asio::awaitable<std::optional<JobEvent>> EventChannel::next(Clock::time_point until) {
  if (events_.empty()) {
    wake_.expires_at(until);
    co_await wake_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }
  if (events_.empty()) co_return std::nullopt;
  JobEvent event = std::move(events_.front());
  events_.pop_front();
  co_return event;
}

}  // namespace llmq
