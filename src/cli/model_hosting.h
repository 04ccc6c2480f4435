// ModelHosting: the models `llmq serve` serves, from their files to the routes. Each model's
// read-only half is loaded vocab-only for the HTTP side (the ModelCatalog the routes see), and its
// engine lives in the warm pool (engine/model_pool.h), whose inboxes are ModelQueues' partitions.
//
// Loading happens off the I/O threads, so /healthz and /readyz answer meanwhile: the service turns
// ready (ServiceState::models is set) once the preloaded models are warm.
#pragma once

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "api/api_handler.h"
#include "cli/config.h"
#include "engine/model_pool.h"
#include "queue/model_queues.h"

namespace llmq {

class LlamaModelText;

// The warm pool's options from the flags (logged as one line): every served model with its inbox
// (`inbox_of(name)`), the engines' settings, max_loaded, keep_alive, preload (default: --model's),
// pinned. Used by serve (inboxes: ModelQueues' partitions) and worker (its local inboxes).
PoolOptions pool_options(const ServeConfig& config,
                         const std::function<InProcessQueue&(const std::string&)>& inbox_of,
                         SchedulerOptions scheduler);

class ModelHosting {
 public:
  // The pool over `queues` (one partition per served model, named as model_name_of() names
  // them). Throws std::invalid_argument for flags the pool refuses (parse_command_line has
  // checked them already).
  ModelHosting(const ServeConfig& config, ModelQueues& queues, ServiceState& state,
               SchedulerOptions scheduler);
  ~ModelHosting();  // stop()

  // In the background: every model's vocabulary, then the pool; once the preloaded models are
  // warm, the catalog is published (ready). On a failure, calls `on_failure` from that thread.
  void load(std::function<void()> on_failure);
  // Stops the pool: jobs still running end with error "shutting_down". Waits for a start-up load
  // under way first. Idempotent.
  void stop();

  // For the slot gauges and the runtime snapshots, from any thread: over every model in memory.
  double busy_slots() const { return pool_.busy_slots(); }
  double total_slots() const { return pool_.total_slots(); }

 private:
  const ServeConfig& config_;
  ServiceState& state_;
  ModelPool pool_;
  std::vector<std::unique_ptr<LlamaModelText>> texts_;  // vocab-only, set by the loader thread
  std::unique_ptr<ModelCatalog> catalog_;                // set by the loader thread
  std::jthread loader_;
};

}  // namespace llmq
