// A last line in the log when the process dies of a fault (SIGSEGV, SIGILL, SIGBUS, SIGFPE):
// what llmq was doing and which CPU features its llama.cpp build uses, so a kernel that faults
// on this CPU (an instruction the CPU lacks, a broken AMX path) is named in the log instead of
// leaving only a kernel trap line. The process still dies of the same signal afterwards (the
// handler restores the default action and re-raises), so exit codes and core dumps are as before.
//
// Not installed in sanitizer builds, whose own handlers report faults better.
#pragma once

#include <string>

namespace llmq {

// Installs the handlers. `context` (the CPU features in use, the llama.cpp build) is copied
// into a fixed buffer now, since a signal handler may not allocate.
void install_fatal_signal_report(const std::string& context);

// What the process is doing now ("warm-up decode", "serving"); a string literal, kept as is.
void set_fatal_signal_phase(const char* phase);

}  // namespace llmq
