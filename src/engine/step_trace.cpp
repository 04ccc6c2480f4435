#include "engine/step_trace.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "engine/elapsed.h"

namespace llmq {

StepTrace::StepTrace(const std::string& path) : file_(std::fopen(path.c_str(), "w")) {
  if (file_ == nullptr) {
    throw std::runtime_error("cannot open the step trace " + path + ": " + std::strerror(errno));
  }
}

StepTrace::~StepTrace() { std::fclose(file_); }

void StepTrace::write(const std::string& model, const StepRecord& step) {
  const auto round = [](double ms) { return std::round(ms * 1000) / 1000; };  // to the µs
  const nlohmann::json line{{"model", model},
                            {"t_ms", round(seconds_between(opened_, Clock::now()) * 1000)},
                            {"gen", step.generating},
                            {"prompt", step.prompt_tokens},
                            {"prefilling", step.prefilling},
                            {"sampled", step.sampled},
                            {"wait_ms", round(step.wait_ms)},
                            {"decode_ms", round(step.decode_ms)},
                            {"sample_ms", round(step.sample_ms)}};
  const std::string text = line.dump() + "\n";
  const std::scoped_lock lock(mutex_);
  std::fwrite(text.data(), 1, text.size(), file_);
  std::fflush(file_);  // a line per step, readable as it comes (a step takes milliseconds)
}

}  // namespace llmq
