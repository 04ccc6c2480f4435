#include "util/fatal_signal.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace llmq {
namespace {

[[maybe_unused]] char g_context[1024] = {};                             // written once, before any handler runs
std::atomic<const char*> g_phase{"starting"};          // a string literal

[[maybe_unused]] void write_all(const char* text) {
  std::size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<std::size_t>(n);
  }
}

[[maybe_unused]] const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGILL: return "SIGILL (an instruction this CPU does not have)";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    default: return "a fatal signal";
  }
}

// Only async-signal-safe calls: write(2), then the default action again.
[[maybe_unused]] void on_fatal_signal(int sig) {
  write_all("llmq: fatal ");
  write_all(signal_name(sig));
  write_all(" during ");
  write_all(g_phase.load());
  write_all("; ");
  write_all(g_context);
  write_all("\n");
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

}  // namespace

void install_fatal_signal_report([[maybe_unused]] const std::string& context) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return;
#else
  std::strncpy(g_context, context.c_str(), sizeof g_context - 1);
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  for (int sig : {SIGSEGV, SIGILL, SIGBUS, SIGFPE}) ::sigaction(sig, &action, nullptr);
#endif
}

void set_fatal_signal_phase(const char* phase) { g_phase.store(phase); }

}  // namespace llmq
