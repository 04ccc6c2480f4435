// The process's limit on open file descriptors (RLIMIT_NOFILE): every connection holds one, so
// a server meant for thousands of idle connections raises its soft limit to the hard one at
// start, as nginx (worker_rlimit_nofile) and Go's runtime do.
#pragma once

#include <cstdint>

namespace llmq {

struct FdLimit {
  std::uint64_t before = 0;  // the soft limit the process started with
  std::uint64_t now = 0;     // the soft limit in force after raise_fd_limit()
  std::uint64_t hard = 0;    // the hard limit (the most an unprivileged process may set)
};

// Raises the soft limit to the hard one; an unlimited hard limit counts as the kernel's
// fs.nr_open. Never lowers it; on failure leaves it as it was.
FdLimit raise_fd_limit();

}  // namespace llmq
