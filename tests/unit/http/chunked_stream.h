// A synchronous in-memory stream (Beast's SyncReadStream) for tests of request reading: hands
// out a client's bytes at most `chunk` per read, then end of stream. Used by the unit tests and
// by the fuzz target tests/fuzz/fuzz_http_request.cpp.
#pragma once

#include <algorithm>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <string_view>

namespace llmq::testing {

class ChunkedStream {
 public:
  ChunkedStream(std::string_view bytes, std::size_t chunk) : bytes_(bytes), chunk_(chunk) {}

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, boost::beast::error_code& ec) {
    if (pos_ == bytes_.size()) {
      ec = boost::asio::error::eof;
      return 0;
    }
    ec = {};
    const std::size_t n = std::min(chunk_, bytes_.size() - pos_);
    const std::size_t copied =
        boost::asio::buffer_copy(buffers, boost::asio::buffer(bytes_.data() + pos_, n));
    pos_ += copied;
    return copied;
  }

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers) {
    boost::beast::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  std::string_view bytes_;  // everything the client sends
  std::size_t chunk_;       // the most one read returns
  std::size_t pos_ = 0;     // bytes handed out so far
};

}  // namespace llmq::testing
