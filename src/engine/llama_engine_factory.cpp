#include "engine/llama_engine_factory.h"

#include <spdlog/spdlog.h>

#include "engine/llama_engine.h"
#include "util/fatal_signal.h"

namespace llmq {

void use_llama_engines(PoolOptions& options) {
  options.init_runtime = init_llama_runtime;
  options.make_engine = [](const PoolModel& model) -> std::unique_ptr<Engine> {
    auto engine = std::make_unique<LlamaEngine>(
        LlamaEngineOptions{model.path, model.engine.slots, model.engine.ctx_per_slot,
                           model.engine.batch_tokens, model.engine.threads});
    const ModelInfo& m = engine->info();
    spdlog::info(
        "model loaded: name={} desc=\"{}\" params={} ctx_train={} vocab={} chat_template={}", m.name, m.description, m.n_params, m.n_ctx_train, m.n_vocab,
                 m.has_chat_template ? "yes" : "no");
    // Every kernel a request will run, run once before the model serves: a fault ends the
    // process here, named by the fatal-signal report, before a job of this model started.
    set_fatal_signal_phase("a model's warm-up decode (before it serves)");
    const WarmUpReport warm = engine->warm_up();
    set_fatal_signal_phase("serving");
    spdlog::info("warm-up: {} tokens in {} decodes over {} slots, {:.0f} ms (model {})",
                 warm.tokens, warm.decodes, engine->slots(), warm.ms, m.name);
    return engine;
  };
}

}  // namespace llmq
