#include "util/fd_limit.h"

#include <sys/resource.h>

#include <fstream>

namespace llmq {
namespace {

// The kernel's ceiling for RLIMIT_NOFILE (fs.nr_open); 1 Mi, its default, when unreadable.
std::uint64_t kernel_nr_open() {
  std::ifstream in("/proc/sys/fs/nr_open");
  std::uint64_t value = 0;
  if (in >> value && value > 0) return value;
  return 1 << 20;
}

}  // namespace

FdLimit raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return {};
  FdLimit result{limit.rlim_cur, limit.rlim_cur, limit.rlim_max};
  rlim_t target = limit.rlim_max;
  if (target == RLIM_INFINITY) {
    target = kernel_nr_open();
    result.hard = target;
  }
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < target) {
    rlimit raised{target, limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) result.now = target;
  }
  return result;
}

}  // namespace llmq
