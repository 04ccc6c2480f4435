#include "telemetry/build_info.h"

#include <fstream>
#include <map>
#include <sstream>

#ifndef LLMQ_VERSION
#define LLMQ_VERSION "unknown"
#endif
#ifndef LLMQ_GIT_COMMIT
#define LLMQ_GIT_COMMIT "unknown"
#endif

namespace llmq::telemetry {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// llama.cpp's feature names (ggml-cpu's get_features) against the /proc/cpuinfo flags each
// needs. Only instruction sets: a build feature such as REPACK is not in this table.
const std::map<std::string_view, std::vector<std::string_view>>& cpu_flags_needed() {
  static const std::map<std::string_view, std::vector<std::string_view>> table = {
      {"SSE3", {"pni"}},
      {"SSSE3", {"ssse3"}},
      {"AVX", {"avx"}},
      {"AVX_VNNI", {"avx_vnni"}},
      {"AVX2", {"avx2"}},
      {"F16C", {"f16c"}},
      {"FMA", {"fma"}},
      {"BMI2", {"bmi2"}},
      {"AVX512", {"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"}},
      {"AVX512_VBMI", {"avx512vbmi"}},
      {"AVX512_VNNI", {"avx512_vnni"}},
      {"AVX512_BF16", {"avx512_bf16"}},
      {"AMX_INT8", {"amx_int8", "amx_tile"}},
  };
  return table;
}

// Features of the report that are build options, not instruction sets.
bool is_instruction_set(std::string_view name) {
  return name != "OPENMP" && name != "REPACK" && name != "LLAMAFILE" && name != "KLEIDIAI" &&
         name != "ACCELERATE" && name != "CPU_HBM";
}

}  // namespace

BuildInfo llmq_build_info() {
  BuildInfo info;
  info.version = LLMQ_VERSION;
  info.commit = LLMQ_GIT_COMMIT;
  return info;
}

std::vector<std::pair<std::string, std::string>> build_info_labels(const BuildInfo& info) {
  return {{"version", info.version},     {"commit", info.commit},
          {"llama_cpp", info.llama_cpp}, {"ggml", info.ggml},
          {"cpu_features", info.cpu_features}, {"amx", info.amx ? "on" : "off"},
          {"cpu_model", info.cpu_model}};
}

std::string describe(const BuildInfo& info) {
  std::ostringstream out;
  out << "llmq " << info.version << " (commit " << info.commit << ")\n";
  out << "llama.cpp " << info.llama_cpp << ", ggml " << info.ggml << "\n";
  out << "CPU features in use: " << info.cpu_features << " (AMX kernels "
      << (info.amx ? "on" : "off") << ")\n";
  out << "running on: " << (info.cpu_model.empty() ? "unknown CPU" : info.cpu_model) << "\n";
  out << "llama.cpp system info: " << trim(info.system_info) << "\n";
  return out.str();
}

std::string cpu_features_from_system_info(std::string_view system_info) {
  // "CPU : SSE3 = 1 | AVX = 1 | ... | " — only the CPU backend's part.
  const std::size_t cpu = system_info.find("CPU :");
  if (cpu == std::string_view::npos) return {};
  std::string_view rest = system_info.substr(cpu + 5);
  std::string out;
  while (!rest.empty()) {
    const std::size_t bar = rest.find('|');
    const std::string_view item = trim(rest.substr(0, bar));
    rest = bar == std::string_view::npos ? std::string_view{} : rest.substr(bar + 1);
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      if (item.find(':') != std::string_view::npos) break;  // the next backend's name
      continue;
    }
    const std::string_view name = trim(item.substr(0, eq));
    const std::string_view value = trim(item.substr(eq + 1));
    if (name.find(' ') != std::string_view::npos) break;  // "Metal : X" of another backend
    if (value == "1" && is_instruction_set(name)) {
      if (!out.empty()) out += ' ';
      out += name;
    }
  }
  return out;
}

std::string missing_cpu_features(std::string_view cpu_features, std::string_view cpu_flags) {
  const std::vector<std::string_view> have = words(cpu_flags);
  auto has = [&have](std::string_view flag) {
    for (std::string_view h : have)
      if (h == flag) return true;
    return false;
  };
  std::string out;
  for (std::string_view feature : words(cpu_features)) {
    const auto it = cpu_flags_needed().find(feature);
    if (it == cpu_flags_needed().end()) continue;
    for (std::string_view flag : it->second) {
      if (has(flag)) continue;
      if (!out.empty()) out += ' ';
      out += feature;
      break;
    }
  }
  return out;
}

std::string cpuinfo_field(std::string_view cpuinfo, std::string_view field) {
  std::size_t at = 0;
  while (at < cpuinfo.size()) {
    std::size_t end = cpuinfo.find('\n', at);
    if (end == std::string_view::npos) end = cpuinfo.size();
    const std::string_view line = cpuinfo.substr(at, end - at);
    at = end + 1;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    if (trim(line.substr(0, colon)) == field) return std::string(trim(line.substr(colon + 1)));
  }
  return {};
}

std::string read_cpuinfo() {
  std::ifstream in("/proc/cpuinfo");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace llmq::telemetry
