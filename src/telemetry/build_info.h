// BuildInfo: what this binary is and what it runs on — llmq's version, the llama.cpp it was
// built from, the instruction sets llama.cpp's CPU backend was compiled for, and the CPU that
// runs it. `llmq --version` prints it, `llmq serve` logs it at start, and the labels of the
// llmq_build_info gauge carry it, so an operator can tell which kernels a crash or a speed
// belongs to without a debugger.
//
// The parts that need llama.cpp are filled in by engine/llama_build_info.h; everything here is
// plain text handling, testable without a model library.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace llmq::telemetry {

struct BuildInfo {
  std::string version;       // llmq's release (CMake project version)
  std::string commit;        // llmq's git commit at configure time; "unknown" outside a checkout
  std::string llama_cpp;     // the llama.cpp source: release tag or build number, and commit
  std::string ggml;          // ggml's version, as the library reports it
  std::string system_info;   // llama.cpp's own report (llama_print_system_info), verbatim
  std::string cpu_features;  // instruction sets the CPU backend uses, space-separated ("AVX2 FMA")
  bool amx = false;          // whether llama.cpp's AMX kernels are compiled in
  std::string cpu_model;     // the running CPU's model name (/proc/cpuinfo)
};

// llmq's own version and commit only (the llama.cpp fields empty): for tests and tools that do
// not link llama.cpp.
BuildInfo llmq_build_info();

// The label pairs of the llmq_build_info gauge, in a fixed order.
std::vector<std::pair<std::string, std::string>> build_info_labels(const BuildInfo& info);

// Several lines for `llmq --version`.
std::string describe(const BuildInfo& info);

// The CPU backend's features that are on ("= 1") in llama.cpp's system-info report, space
// separated, in the report's order: "CPU : SSE3 = 1 | AVX = 1 | ..." gives "SSE3 AVX ...".
// Features that are not instruction sets (OPENMP, REPACK, LLAMAFILE) are left out.
std::string cpu_features_from_system_info(std::string_view system_info);

// The instruction sets among `cpu_features` that a CPU whose /proc/cpuinfo "flags" line is
// `cpu_flags` does not have, space separated; empty when the build can run there. Features this
// function does not know are assumed present.
std::string missing_cpu_features(std::string_view cpu_features, std::string_view cpu_flags);

// The "flags" and "model name" lines of the first CPU in a /proc/cpuinfo text; empty if absent.
std::string cpuinfo_field(std::string_view cpuinfo, std::string_view field);

// The whole /proc/cpuinfo of this machine; empty where there is none.
std::string read_cpuinfo();

}  // namespace llmq::telemetry
