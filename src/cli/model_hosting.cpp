#include "cli/model_hosting.h"

#include <spdlog/spdlog.h>

#include "cli/service_parts.h"
#include "engine/llama_engine_factory.h"
#include "engine/llama_model_text.h"
#include "util/keep_alive.h"

namespace llmq {
namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

}  // namespace

PoolOptions pool_options(const ServeConfig& config,
                         const std::function<InProcessQueue&(const std::string&)>& inbox_of,
                         SchedulerOptions scheduler) {
  PoolOptions options;
  std::vector<std::string> names;
  for (const std::string& path : served_model_paths(config)) {
    names.push_back(model_name_of(path));
    options.models.push_back(PoolModel{
        .name = names.back(),
        .path = path,
        .engine = {.slots = config.slots, .ctx_per_slot = config.ctx_size,
                   .batch_tokens = config.batch_size, .threads = config.threads},
        .inbox = &inbox_of(names.back())});
  }
  options.max_loaded = config.max_loaded;
  options.default_keep_alive =
      parse_keep_alive(config.keep_alive).value_or(std::chrono::minutes(5));
  // Without --preload, the default model: ready means it is warm, as with one model.
  options.preload = split_list(config.preload);
  if (options.preload.empty()) options.preload = {names.front()};
  options.pinned = split_list(config.pin);
  options.scheduler = std::move(scheduler);
  use_llama_engines(options);
  spdlog::info("models: {} (default {}); at most {} loaded at once, keep_alive {}, preload {}, "
               "pinned {}",
               joined(names), names.front(), options.max_loaded,
               describe_keep_alive(options.default_keep_alive), joined(options.preload),
               joined(options.pinned));
  return options;
}

ModelHosting::ModelHosting(const ServeConfig& config, ModelQueues& queues, ServiceState& state,
                           SchedulerOptions scheduler)
    : config_(config), state_(state), pool_(pool_options(
          config, [&queues](const std::string& name) -> InProcessQueue& { return queues.partition(name); },
          std::move(scheduler))) {}

ModelHosting::~ModelHosting() { stop(); }

void ModelHosting::load(std::function<void()> on_failure) {
  loader_ = std::jthread([this, on_failure = std::move(on_failure)] {
    try {
      std::vector<ServedModel> served;
      for (const std::string& path : served_model_paths(config_)) {
        texts_.push_back(std::make_unique<LlamaModelText>(path, /*vocab_only=*/true));
        served.push_back(ServedModel{texts_.back().get(), config_.ctx_size});
      }
      catalog_ = std::make_unique<ModelCatalog>(
          std::move(served), [this](const std::string& name) { return pool_.loaded(name); },
          parse_model_aliases(config_.model_alias, served_model_names(config_)));
      pool_.start();
      std::string error;
      if (!pool_.wait_preloaded(error)) throw std::runtime_error(error);
      state_.models.store(catalog_.get());
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      on_failure();
    }
  });
}

void ModelHosting::stop() {
  if (loader_.joinable()) loader_.join();
  pool_.stop();
}

}  // namespace llmq
