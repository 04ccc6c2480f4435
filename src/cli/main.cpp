#include <variant>

#include "cli/config.h"
#include "cli/serve.h"

int main(int argc, char** argv) {
  const llmq::CommandLine command = llmq::parse_command_line(argc, argv, llmq::process_env());
  if (const auto* exit_now = std::get_if<llmq::ExitNow>(&command)) return exit_now->code;
  return llmq::run_serve(std::get<llmq::ServeConfig>(command));
}
