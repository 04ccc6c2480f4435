#include "http/live_connections.h"

#include <boost/asio/post.hpp>

namespace llmq::http {

LiveConnections::Registration::Registration(std::shared_ptr<LiveConnections> live,
                                            boost::asio::any_io_executor executor,
                                            boost::beast::tcp_stream& stream)
    : live_(std::move(live)) {
  std::lock_guard lock(live_->mutex_);
  id_ = live_->next_id_++;
  live_->entries_.emplace(id_, Entry{std::move(executor), &stream});
}

LiveConnections::Registration::~Registration() {
  std::lock_guard lock(live_->mutex_);
  live_->entries_.erase(id_);
}

void LiveConnections::shut_all() {
  std::lock_guard lock(mutex_);
  for (const auto& [id, entry] : entries_) {
    boost::asio::post(entry.executor, [live = shared_from_this(), id = id] {
      std::lock_guard inner(live->mutex_);
      const auto it = live->entries_.find(id);
      if (it == live->entries_.end()) return;  // ended meanwhile
      boost::beast::error_code ignored;
      auto& socket = it->second.stream->socket();
      socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
      socket.cancel(ignored);
    });
  }
}

}  // namespace llmq::http
