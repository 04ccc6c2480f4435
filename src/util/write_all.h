// Writing a whole buffer to a file descriptor, across short writes and EINTR. Throws
// std::system_error naming `what` on any other error; the bytes before it may be written.
#pragma once

#include <string_view>

namespace llmq {

void write_all(int fd, std::string_view data, const char* what);

}  // namespace llmq
