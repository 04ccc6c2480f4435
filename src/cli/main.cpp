#include <cstdio>
#include <variant>

#include "cli/config.h"
#include "cli/scale_out.h"
#include "cli/serve.h"
#include "cli/stack_commands.h"
#include "engine/llama_build_info.h"

namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};

}  // namespace

int main(int argc, char** argv) {
  const llmq::CommandLine command = llmq::parse_command_line(argc, argv, llmq::process_env());
  return std::visit(
      Overloaded{[](const llmq::ExitNow& exit_now) { return exit_now.code; },
                 [](const llmq::ServeConfig& config) {
                   switch (config.role) {
                     case llmq::Role::gateway: return llmq::run_gateway(config);
                     case llmq::Role::worker: return llmq::run_worker(config);
                     case llmq::Role::serve: break;
                   }
                   return llmq::run_serve(config);
                 },
                 [](const llmq::ElasticSetupConfig& config) { return llmq::run_elastic_setup(config); },
                 [](const llmq::ElasticReplayConfig& config) { return llmq::run_elastic_replay(config); },
                 [](const llmq::KibanaSetupConfig& config) { return llmq::run_kibana_setup(config); },
                 [](const llmq::ShowVersion&) {
                   std::fputs(llmq::telemetry::describe(llmq::llama_build_info()).c_str(), stdout);
                   return 0;
                 }},
      command);
}
