// ModelPool: the warm pool. It owns every model a process serves from memory and decides which
// are loaded: a model whose inbox holds jobs is loaded (cold start: weights and a warm-up
// decode, on a pool thread, never an I/O one), at most `max_loaded` at once, evicting the least
// recently used idle one to make room; an idle model is unloaded once its keep_alive has passed.
// Independent of where jobs come from: each model has an inbox (an InProcessQueue the pool does
// not own), filled by the HTTP side in `llmq serve` (queue/model_queues.h) or by a worker's
// JetStream fetcher.
//
// Each model is a small state machine: cold → loading → warm → (evicted) cold.
//   - cold with jobs waiting: each waiting job is sent LoadingEvent{model} (once per load, also
//     those that arrive during it), and the load starts when there is room. A load that fails
//     ends the jobs waiting then with error "model_load_failed"; the model stays cold.
//   - warm: a Scheduler pops the inbox (through a ModelFeed, engine/model_feed.h, that records
//     what it takes and can be paused).
//   - evicted only when idle: no job in a slot or in a retry's backoff, none taken and not yet
//     started, an empty inbox. Never while loading or decoding; a pinned model never.
//   - keep_alive in force: that of the last job taken from its inbox (ParsedRequest::
//     keep_alive_ms), else `default_keep_alive`; 0 unloads as soon as idle, negative never.
//
// Threads: one keeper thread owns the state machine (it alone changes a model's state, starts
// and stops schedulers); it looks every `tick` or when notify() wakes it. A load runs on a
// loader thread of its own (one at a time), so the keeper goes on telling late arrivals and
// expiring other models meanwhile. The queries may be called from any thread: they read the
// state under the pool's mutex.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/scheduler.h"
#include "queue/in_process_queue.h"

namespace llmq {

// How a model's engine is made (--slots, --ctx-size, --batch-size, --threads).
struct EngineSettings {
  std::int32_t slots = 4;           // sequences decoded together
  std::int32_t ctx_per_slot = 4096; // tokens one sequence may hold
  std::int32_t batch_tokens = 512;  // most tokens one decode step takes
  std::int32_t threads = 0;         // CPU threads for decoding; 0: every core
};

// One model of the pool.
struct PoolModel {
  std::string name = {};            // what clients call it (the GGUF file stem, ModelInfo::name)
  std::string path = {};            // the GGUF file
  EngineSettings engine = {};
  InProcessQueue* inbox = nullptr;  // where its jobs wait; not owned, outlives the pool
};

// Loads a model whole and readies it to serve (a warm-up decode). Throws std::exception with a
// message naming the problem. Called on the pool's loader thread.
using EngineFactory = std::function<std::unique_ptr<Engine>(const PoolModel& model)>;

struct PoolOptions {
  std::vector<PoolModel> models = {};  // names unique
  std::int32_t max_loaded = 1;         // most models in memory at once, loading ones included; >= 1
  // How long an idle model stays loaded when its last job set no keep_alive (negative: forever).
  std::chrono::milliseconds default_keep_alive = std::chrono::minutes(5);
  std::vector<std::string> preload = {};  // loaded at start(), in this order; at most max_loaded
  std::vector<std::string> pinned = {};   // never evicted nor expired; at most max_loaded
  SchedulerOptions scheduler = {};        // every model's scheduler: worker id, metrics, retries…
  // Makes the engines: a LlamaEngine in the llmq binary (engine/llama_engine_factory.h), a fake
  // one in unit tests. Required.
  EngineFactory make_engine = nullptr;
  // The engines' process-wide set-up (llama.cpp's: init_llama_runtime), run by the constructor;
  // null: none.
  std::function<void()> init_runtime = nullptr;
  std::chrono::milliseconds tick{20};     // how often the keeper looks without being woken
};

enum class ModelState { cold, loading, warm };
const char* model_state_name(ModelState state);

// One model as a query sees it.
struct ModelStatus {
  std::string name = {};
  ModelState state = ModelState::cold;
  bool pinned = false;
  std::int32_t busy_slots = 0;  // slots holding a job (warm)
  std::int32_t slots = 0;       // the engine's slots while warm, else 0
  std::int64_t waiting = 0;     // jobs in its inbox
  std::optional<Clock::time_point> last_used = std::nullopt;  // last seen busy; none: never loaded
  std::chrono::milliseconds keep_alive{0};  // in force now
};

class ModelPool {
 public:
  // Checks the options (std::invalid_argument: no factory, max_loaded < 1, a name twice or
  // unknown, more preloaded or pinned models than max_loaded) and runs `init_runtime`.
  explicit ModelPool(PoolOptions options);
  ~ModelPool();  // stop()
  ModelPool(const ModelPool&) = delete;
  ModelPool& operator=(const ModelPool&) = delete;

  // Starts the keeper; it loads the preload models first.
  void start();
  // After start(): blocks until every preload model is warm (true), or one failed to load
  // (false; `error` says why). True at once without preloads.
  bool wait_preloaded(std::string& error);
  // Jobs arrived: look now rather than at the next tick. Any thread, cheap.
  void notify();
  // Stops the keeper (after a load under way ends) and every scheduler: jobs running end with
  // error "shutting_down"; jobs still in the inboxes stay there (their owner drains them).
  // Idempotent.
  void stop();

  // --- queries, any thread ---
  bool loaded(const std::string& name) const;  // warm
  std::int32_t busy_slots() const;             // over every model
  std::int32_t total_slots() const;            // of the warm models
  std::vector<ModelStatus> snapshot() const;   // in the order of PoolOptions::models
  // How many more jobs of this model could start now: warm, its free slots minus its inbox;
  // cold, 1 when it could be loaded now (room under max_loaded, or an idle model to evict) and
  // its inbox is empty; loading (or an unknown name), 0. What a fetcher may take on for it.
  std::int64_t room(const std::string& name) const;

 private:
  struct Model;
  struct LoadResult;

  void keep(const std::stop_token& stop);   // the keeper thread's loop
  void step();                              // one look: the whole state machine, keeper only
  void finish_load(LoadResult result);
  void fail_waiting(Model& model, const std::string& message);
  void tell_loading(Model& model);
  void note_use(Model& model, Clock::time_point now);
  void expire_idle(Clock::time_point now);
  void load_next(Clock::time_point now);
  // Room for one more model in memory: there is some, or the least recently used idle model was
  // evicted for it. False: every model in memory is busy, pinned or loading.
  bool make_room();
  void begin_load(Model& model, Clock::time_point now);
  // Unloads a warm model if it is idle (checked with its feed paused); false when it is not.
  bool try_evict(Model& model, const char* reason);
  Model* find(const std::string& name) const;
  // Room for one more model under max_loaded, or an idle model that could be evicted for it.
  // Caller holds mu_.
  bool could_load_locked(const Model& model) const;

  PoolOptions options_;
  std::vector<std::unique_ptr<Model>> models_;  // fixed after construction
  mutable std::mutex mu_;              // guards each model's state, engine and scheduler, below
  std::condition_variable_any wake_;   // the keeper's: notify(), a load's end, stop
  bool woken_ = false;                 // notify() came since the keeper last looked
  std::unique_ptr<LoadResult> load_result_;  // a finished load, for the keeper to install
  std::string preload_error_;          // the first preload that failed
  std::size_t preloads_left_ = 0;      // preload models not warm yet (nor failed)
  std::condition_variable preloaded_;  // signalled when preloads_left_ reaches 0 or one failed
  // --- keeper thread only ---
  Model* loading_ = nullptr;           // the model being loaded, if any
  Clock::time_point load_began_{};
  std::size_t next_preload_ = 0;       // index into options_.preload of the next to load
  std::jthread loader_;                // runs the load under way
  std::jthread keeper_;
};

}  // namespace llmq
