// The command-line tests' helpers: a fake environment, and parsing that must succeed or fail.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "cli/config.h"

namespace llmq::config_test {

using Env = std::map<std::string, std::string>;

inline EnvLookup env_of(Env vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

inline const Env kHome = {{"HOME", "/home/u"}};
inline const std::string kHomeModel = "/home/u/.cache/llmq/models/SmolLM2-135M-Instruct.Q4_1.gguf";

inline CommandLine parse(std::vector<std::string> args, const Env& env = kHome) {
  args.insert(args.begin(), "llmq");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  return parse_command_line(static_cast<int>(argv.size()), argv.data(), env_of(env));
}

// Parses a command line that must succeed.
inline ServeConfig serve(std::vector<std::string> args, const Env& env = kHome) {
  ::testing::internal::CaptureStderr();
  CommandLine result = parse(std::move(args), env);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(std::holds_alternative<ServeConfig>(result)) << "stderr: " << err;
  EXPECT_EQ(err, "");
  if (auto* config = std::get_if<ServeConfig>(&result)) return *config;
  return {};
}

// Parses a command line that must fail with a usage error; returns the stderr text.
inline std::string usage_error(std::vector<std::string> args, const Env& env = kHome) {
  ::testing::internal::CaptureStderr();
  CommandLine result = parse(std::move(args), env);
  const std::string err = testing::internal::GetCapturedStderr();
  const auto* exit = std::get_if<ExitNow>(&result);
  EXPECT_NE(exit, nullptr) << "parsed although an error was expected";
  if (exit != nullptr) {
    EXPECT_EQ(exit->code, 2);
  }
  EXPECT_TRUE(err.starts_with("llmq: ")) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "not one line: " << err;
  return err;
}

}  // namespace llmq::config_test
