#include "engine/llama_build_info.h"

#include <llama.h>

#ifndef LLMQ_LLAMA_SOURCE
#define LLMQ_LLAMA_SOURCE "unknown source"
#endif
#ifndef LLMQ_LLAMA_BUILD
#define LLMQ_LLAMA_BUILD "unknown"
#endif

namespace llmq {

telemetry::BuildInfo llama_build_info() {
  telemetry::BuildInfo info = telemetry::llmq_build_info();
  info.llama_cpp = std::string(LLMQ_LLAMA_SOURCE) + " (" + LLMQ_LLAMA_BUILD + ")";
  info.ggml = std::string(ggml_version()) + " (" + ggml_commit() + ")";
  info.system_info = llama_print_system_info();
  info.cpu_features = telemetry::cpu_features_from_system_info(info.system_info);
  info.amx = info.system_info.find("AMX_INT8 = 1") != std::string::npos;
  info.cpu_model = telemetry::cpuinfo_field(telemetry::read_cpuinfo(), "model name");
  return info;
}

}  // namespace llmq
