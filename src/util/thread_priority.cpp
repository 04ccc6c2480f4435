#include "util/thread_priority.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace llmq {

void lower_this_thread_priority(int nice, std::string_view what) {
  if (nice <= 0) return;
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), nice) != 0)
    spdlog::warn("cannot lower the priority of {}: {}", what, std::strerror(errno));
}

void name_this_thread(const char* name) { pthread_setname_np(pthread_self(), name); }

}  // namespace llmq
