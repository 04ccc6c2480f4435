// LiveConnections: the connections a Server is serving, so that a shutdown can end them all at
// once (shut_all) instead of leaving each handler to wait on its client.
//
// Thread safety: the map is guarded by a mutex; each entry's stream is touched only on its own
// connection's executor (shut_all posts there), where the connection also unregisters it before
// the stream goes away. Ownership: shared with every Registration, since a connection's
// coroutine frame may outlive the Server when the io_context is torn down.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

namespace llmq::http {

class LiveConnections : public std::enable_shared_from_this<LiveConnections> {
 public:
  // One connection, registered for as long as this lives (in its coroutine's frame).
  class Registration {
   public:
    Registration(std::shared_ptr<LiveConnections> live, boost::asio::any_io_executor executor,
                 boost::beast::tcp_stream& stream);
    ~Registration();
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;

   private:
    std::shared_ptr<LiveConnections> live_;
    std::uint64_t id_ = 0;
  };

  // Shuts down (both directions) and cancels every registered connection's socket, each on its
  // own executor: the handlers' pending operations end with an error. Any thread.
  void shut_all();

 private:
  struct Entry {
    boost::asio::any_io_executor executor;
    boost::beast::tcp_stream* stream;
  };
  std::mutex mutex_;
  std::map<std::uint64_t, Entry> entries_;
  std::uint64_t next_id_ = 0;
};

}  // namespace llmq::http
