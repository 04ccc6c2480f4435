#include "util/write_all.h"

#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace llmq {

void write_all(int fd, std::string_view data, const char* what) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), what);
    }
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace llmq
