#include "engine/model_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string_view>
#include <unordered_set>

#include "engine/model_feed.h"
#include "util/keep_alive.h"
#include "util/thread_priority.h"

namespace llmq {
namespace {

using std::chrono::milliseconds;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

const char* model_state_name(ModelState state) {
  switch (state) {
    case ModelState::cold: return "cold";
    case ModelState::loading: return "loading";
    case ModelState::warm: return "warm";
  }
  return "cold";
}

struct ModelPool::Model {
  PoolModel spec;
  bool pinned = false;
  telemetry::PoolModelMetrics* metrics = nullptr;  // null without ServiceMetrics
  // Guarded by mu_; written by the keeper only (which may read them without the lock):
  ModelState state = ModelState::cold;
  std::unique_ptr<Engine> engine;              // while warm
  std::unique_ptr<ModelFeed> feed;             // while warm
  std::unique_ptr<Scheduler> scheduler;        // while warm; uses engine and feed
  std::optional<Clock::time_point> last_used;  // last seen busy, or loaded
  bool preloading = false;                     // a preload model not warm yet
  // Keeper only:
  std::uint64_t seen_popped = 0;               // the feed's pops at the keeper's last look
  bool active = false;                         // held, took or had jobs at the last look
  std::unordered_set<std::string> told;        // jobs sent LoadingEvent for the load under way
};

struct ModelPool::LoadResult {
  Model* model = nullptr;
  std::unique_ptr<Engine> engine;  // null when the load failed
  std::string error;               // why it failed
};

ModelPool::ModelPool(PoolOptions options) : options_(std::move(options)) {
  if (!options_.make_engine) throw std::invalid_argument("the warm pool needs an engine factory");
  if (options_.max_loaded < 1) throw std::invalid_argument("max_loaded must be at least 1");
  if (options_.models.empty()) throw std::invalid_argument("the warm pool has no model");
  for (PoolModel& spec : options_.models) {
    if (spec.name.empty()) spec.name = std::filesystem::path(spec.path).stem().string();
    if (spec.inbox == nullptr) throw std::invalid_argument("model " + spec.name + " has no inbox");
    if (find(spec.name) != nullptr)
      throw std::invalid_argument("model " + spec.name + " is named twice");
    auto model = std::make_unique<Model>();
    model->spec = spec;
    if (options_.scheduler.metrics != nullptr)
      model->metrics = &options_.scheduler.metrics->pool_model(spec.name);
    models_.push_back(std::move(model));
  }
  const auto check_names = [&](std::vector<std::string>& names, const char* what) {
    std::vector<std::string> unique;
    for (const std::string& name : names) {
      if (find(name) == nullptr)
        throw std::invalid_argument(std::string(what) + " model " + name + " is not served");
      if (std::ranges::find(unique, name) == unique.end()) unique.push_back(name);
    }
    if (std::ssize(unique) > options_.max_loaded)
      throw std::invalid_argument(std::string("more ") + what + " models (" +
                                  std::to_string(unique.size()) + ") than max_loaded (" +
                                  std::to_string(options_.max_loaded) + ")");
    names = std::move(unique);
  };
  check_names(options_.preload, "preloaded");
  check_names(options_.pinned, "pinned");
  for (const std::string& name : options_.pinned) find(name)->pinned = true;
  for (const std::string& name : options_.preload) find(name)->preloading = true;
  preloads_left_ = options_.preload.size();
  if (options_.init_runtime) options_.init_runtime();
}

ModelPool::~ModelPool() { stop(); }

ModelPool::Model* ModelPool::find(const std::string& name) const {
  for (const auto& model : models_)
    if (model->spec.name == name) return model.get();
  return nullptr;
}

void ModelPool::start() {
  keeper_ = std::jthread([this](const std::stop_token& stop) { keep(stop); });
}

bool ModelPool::wait_preloaded(std::string& error) {
  std::unique_lock lock(mu_);
  preloaded_.wait(lock, [&] { return preloads_left_ == 0 || !preload_error_.empty(); });
  error = preload_error_;
  return preload_error_.empty();
}

void ModelPool::notify() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  wake_.notify_all();
}

void ModelPool::keep(const std::stop_token& stop) {
  name_this_thread("llmq-pool");
  while (!stop.stop_requested()) {
    step();
    std::unique_lock lock(mu_);
    wake_.wait_for(lock, stop, options_.tick, [&] { return woken_ || load_result_ != nullptr; });
    woken_ = false;
  }
}

void ModelPool::step() {
  std::unique_ptr<LoadResult> loaded;
  {
    std::lock_guard lock(mu_);
    loaded = std::move(load_result_);
  }
  if (loaded) finish_load(std::move(*loaded));
  const Clock::time_point now = Clock::now();
  if (loading_ != nullptr) tell_loading(*loading_);
  for (const auto& model : models_) note_use(*model, now);
  expire_idle(now);
  if (loading_ == nullptr) load_next(now);
}

void ModelPool::note_use(Model& model, Clock::time_point now) {
  if (model.state != ModelState::warm) return;
  const std::uint64_t popped = model.feed->popped();
  model.active = popped != model.seen_popped || model.scheduler->held_jobs() > 0 ||
                 model.spec.inbox->depth() > 0;
  model.seen_popped = popped;
  if (!model.active) return;
  std::lock_guard lock(mu_);
  model.last_used = now;
}

void ModelPool::expire_idle(Clock::time_point now) {
  for (const auto& model : models_) {
    if (model->state != ModelState::warm || model->pinned || model->active) continue;
    const milliseconds keep_alive = model->feed->keep_alive();
    if (keep_alive.count() < 0 || now - *model->last_used < keep_alive) continue;
    try_evict(*model, "keep_alive");
  }
}

void ModelPool::load_next(Clock::time_point now) {
  // Preloads first, in their order; one already warm (its jobs came first) counts as done.
  while (next_preload_ < options_.preload.size()) {
    Model& model = *find(options_.preload[next_preload_]);
    if (model.state == ModelState::cold) {
      if (make_room()) {
        ++next_preload_;
        begin_load(model, now);
      }
      return;
    }
    ++next_preload_;
    {
      std::lock_guard lock(mu_);
      if (std::exchange(model.preloading, false)) --preloads_left_;
    }
    preloaded_.notify_all();
  }
  // Then the cold model whose oldest job has waited longest.
  Model* next = nullptr;
  Clock::time_point next_oldest{};
  for (const auto& model : models_) {
    if (model->state != ModelState::cold) continue;
    std::optional<Clock::time_point> oldest;
    model->spec.inbox->for_each_waiting([&](const JobPtr& job) {
      if (!oldest) oldest = job->arrived();
    });
    if (oldest && (next == nullptr || *oldest < next_oldest)) {
      next = model.get();
      next_oldest = *oldest;
    }
  }
  if (next != nullptr && make_room()) begin_load(*next, now);
}

bool ModelPool::make_room() {
  const auto in_memory = std::ranges::count_if(
      models_, [](const auto& model) { return model->state != ModelState::cold; });
  if (in_memory < options_.max_loaded) return true;
  // The least recently used idle model goes; its idleness is confirmed with its feed paused.
  std::vector<Model*> candidates;
  for (const auto& model : models_) {
    if (model->state == ModelState::warm && !model->pinned && !model->active)
      candidates.push_back(model.get());
  }
  std::ranges::sort(candidates, {}, [](const Model* model) { return *model->last_used; });
  return std::ranges::any_of(candidates, [&](Model* model) { return try_evict(*model, "lru"); });
}

void ModelPool::begin_load(Model& model, Clock::time_point now) {
  {
    std::lock_guard lock(mu_);
    model.state = ModelState::loading;
  }
  model.told.clear();
  tell_loading(model);
  spdlog::info("model {}: loading ({} jobs waiting)", model.spec.name, model.spec.inbox->depth());
  loading_ = &model;
  load_began_ = now;
  if (loader_.joinable()) loader_.join();
  loader_ = std::jthread([this, &model] {
    name_this_thread("llmq-load");
    lower_this_thread_priority(options_.scheduler.nice, "the model loads");
    auto result = std::make_unique<LoadResult>();
    result->model = &model;
    try {
      result->engine = options_.make_engine(model.spec);
      if (!result->engine) result->error = "the engine factory made no engine";
    } catch (const std::exception& e) {
      result->error = e.what();
    }
    {
      std::lock_guard lock(mu_);
      load_result_ = std::move(result);
    }
    wake_.notify_all();
  });
}

void ModelPool::tell_loading(Model& model) {
  model.spec.inbox->for_each_waiting([&](const JobPtr& job) {
    if (model.told.insert(job->id()).second) job->emit(LoadingEvent{
        model.spec.name,
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - job->arrived()).count()});
  });
}

void ModelPool::finish_load(LoadResult result) {
  if (loader_.joinable()) loader_.join();
  Model& model = *result.model;
  loading_ = nullptr;
  model.told.clear();
  const double seconds = seconds_since(load_began_);
  if (!result.engine) {
    spdlog::error("model {}: load failed after {:.0f} ms: {}", model.spec.name, seconds * 1000,
                  result.error);
    {
      std::lock_guard lock(mu_);
      model.state = ModelState::cold;
      if (std::exchange(model.preloading, false) && preload_error_.empty())
        preload_error_ = "model " + model.spec.name + ": " + result.error;
    }
    preloaded_.notify_all();
    fail_waiting(model, "model " + model.spec.name + " could not be loaded: " + result.error);
    return;
  }
  auto feed = std::make_unique<ModelFeed>(*model.spec.inbox, options_.default_keep_alive);
  auto scheduler = std::make_unique<Scheduler>(*result.engine, *feed, options_.scheduler);
  scheduler->start();
  if (model.metrics != nullptr) {  // counted before anyone can see the model warm
    model.metrics->loads.inc();
    model.metrics->load_seconds.observe(seconds);
    model.metrics->loaded.set(1);
  }
  {
    std::lock_guard lock(mu_);
    model.engine = std::move(result.engine);
    model.feed = std::move(feed);
    model.scheduler = std::move(scheduler);
    model.state = ModelState::warm;
    model.last_used = Clock::now();
    if (std::exchange(model.preloading, false)) --preloads_left_;
  }
  preloaded_.notify_all();
  model.seen_popped = 0;
  model.active = false;
  spdlog::info("model {}: loaded and warm in {:.0f} ms ({} slots; keep_alive {}{})",
               model.spec.name, seconds * 1000, model.engine->slots(),
               describe_keep_alive(options_.default_keep_alive), model.pinned ? ", pinned" : "");
}

void ModelPool::fail_waiting(Model& model, const std::string& message) {
  // Taken out of the inbox first: then no worker can have them, and their last event is ours.
  while (std::optional<JobPtr> job = model.spec.inbox->pop(milliseconds(0)))
    (*job)->emit(ErrorEvent{"model_load_failed", message});
}

bool ModelPool::try_evict(Model& model, const char* reason) {
  model.feed->pause();
  // The feed's count is final while paused. Taken (started) is read before held, so a job
  // between its pop and its slot is seen as taken < popped rather than missed (scheduler.h).
  const bool idle = model.scheduler->jobs_taken() == model.feed->popped() &&
                    model.scheduler->held_jobs() == 0 && model.spec.inbox->depth() == 0;
  if (!idle) {
    model.feed->resume();
    return false;
  }
  model.feed->close();
  model.scheduler->stop();
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<ModelFeed> feed;
  const Clock::time_point last_used = *model.last_used;
  if (model.metrics != nullptr) {  // counted before anyone can see the model cold
    (std::string_view(reason) == "lru" ? model.metrics->evicted_lru
                                       : model.metrics->evicted_keep_alive)
        .inc();
    model.metrics->loaded.set(0);
  }
  {
    std::lock_guard lock(mu_);
    model.state = ModelState::cold;
    scheduler = std::move(model.scheduler);
    engine = std::move(model.engine);
    feed = std::move(model.feed);
  }
  scheduler.reset();  // before the engine and the feed it uses
  engine.reset();
  spdlog::info("model {}: unloaded ({}; idle for {:.0f} ms)", model.spec.name,
               std::string_view(reason) == "lru" ? "room for another model" : "keep_alive passed",
               seconds_since(last_used) * 1000);
  return true;
}

void ModelPool::stop() {
  if (keeper_.joinable()) {
    keeper_.request_stop();
    wake_.notify_all();
    keeper_.join();
  }
  if (loader_.joinable()) loader_.join();  // a load under way ends; its engine is dropped
  {
    std::lock_guard lock(mu_);
    load_result_.reset();
    if (loading_ != nullptr) loading_->state = ModelState::cold;
    loading_ = nullptr;
    if (preloads_left_ > 0 && preload_error_.empty()) preload_error_ = "the pool stopped";
  }
  preloaded_.notify_all();
  for (const auto& model : models_) {
    if (model->state != ModelState::warm) continue;
    model->feed->close();
    model->scheduler->stop();  // running jobs end with shutting_down
    if (model->metrics != nullptr) model->metrics->loaded.set(0);
    std::unique_ptr<Scheduler> scheduler;
    std::unique_ptr<Engine> engine;
    std::unique_ptr<ModelFeed> feed;
    {
      std::lock_guard lock(mu_);
      model->state = ModelState::cold;
      scheduler = std::move(model->scheduler);
      engine = std::move(model->engine);
      feed = std::move(model->feed);
    }
    scheduler.reset();
  }
}

bool ModelPool::loaded(const std::string& name) const {
  std::lock_guard lock(mu_);
  const Model* model = find(name);
  return model != nullptr && model->state == ModelState::warm;
}

std::int32_t ModelPool::busy_slots() const {
  std::lock_guard lock(mu_);
  std::int32_t busy = 0;
  for (const auto& model : models_)
    if (model->state == ModelState::warm) busy += model->scheduler->busy_slots();
  return busy;
}

std::int32_t ModelPool::total_slots() const {
  std::lock_guard lock(mu_);
  std::int32_t total = 0;
  for (const auto& model : models_)
    if (model->state == ModelState::warm) total += model->scheduler->total_slots();
  return total;
}

std::vector<ModelStatus> ModelPool::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<ModelStatus> out;
  for (const auto& model : models_) {
    const bool warm = model->state == ModelState::warm;
    out.push_back(ModelStatus{
        .name = model->spec.name,
        .state = model->state,
        .pinned = model->pinned,
        .busy_slots = warm ? model->scheduler->busy_slots() : 0,
        .slots = warm ? model->scheduler->total_slots() : 0,
        .waiting = model->spec.inbox->depth(),
        .last_used = model->last_used,
        .keep_alive = warm ? model->feed->keep_alive() : options_.default_keep_alive,
    });
  }
  return out;
}

bool ModelPool::could_load_locked(const Model& model) const {
  const auto in_memory = std::ranges::count_if(
      models_, [](const auto& m) { return m->state != ModelState::cold; });
  if (in_memory < options_.max_loaded) return true;
  return std::ranges::any_of(models_, [&](const auto& other) {
    return other.get() != &model && other->state == ModelState::warm && !other->pinned &&
           other->scheduler->held_jobs() == 0 && other->spec.inbox->depth() == 0;
  });
}

std::int64_t ModelPool::room(const std::string& name) const {
  std::lock_guard lock(mu_);
  const Model* model = find(name);
  if (model == nullptr) return 0;
  const std::int64_t waiting = model->spec.inbox->depth();
  switch (model->state) {
    case ModelState::warm: {
      const std::int64_t free = model->scheduler->total_slots() - model->scheduler->busy_slots();
      return std::max<std::int64_t>(0, free - waiting);
    }
    case ModelState::loading:
      return 0;
    case ModelState::cold:
      break;
  }
  return waiting == 0 && could_load_locked(*model) ? 1 : 0;
}

}  // namespace llmq
