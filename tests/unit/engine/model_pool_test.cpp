// The warm pool over fake engines: which model is loaded when, who is told `loading`, what is
// evicted (LRU, keep_alive) and what never is (busy, loading, pinned), a failed load, room().
#include "engine/model_pool.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/scheduler_fixture.h"
#include "queue/model_queues.h"

namespace llmq {
namespace {

using namespace std::chrono_literals;

// Polls `done` until it holds or `within` passed.
bool eventually(const std::function<bool()>& done, milliseconds within = 5000ms) {
  const auto deadline = Clock::now() + within;
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

template <class T>
int count_of(const RecordingSink& sink) {
  int n = 0;
  for (const JobEvent& e : sink.events()) n += std::holds_alternative<T>(e) ? 1 : 0;
  return n;
}

// The index of the first event of type T, or -1.
template <class T>
int index_of(const RecordingSink& sink) {
  const std::vector<JobEvent> events = sink.events();
  for (std::size_t i = 0; i < events.size(); ++i)
    if (std::holds_alternative<T>(events[i])) return static_cast<int>(i);
  return -1;
}

class ModelPoolTest : public ::testing::Test {
 protected:
  // Models a, b and c (2 slots each) over the queues' partitions, with fake engines.
  PoolOptions options(std::int32_t max_loaded, milliseconds keep_alive = 5min) {
    PoolOptions o;
    for (const char* name : {"a", "b", "c"}) {
      o.models.push_back(PoolModel{.name = name,
                                   .path = std::string("/models/") + name + ".gguf",
                                   .engine = {.slots = 2, .ctx_per_slot = 256,
                                              .batch_tokens = 64, .threads = 1},
                                   .inbox = &queues_.partition(name)});
    }
    o.max_loaded = max_loaded;
    o.default_keep_alive = keep_alive;
    o.scheduler =
        SchedulerOptions{.worker_id = "w-test", .metrics = &metrics_, .decode_stall_factor = 0};
    o.make_engine = [this](const PoolModel& model) { return make_engine(model); };
    o.init_runtime = [this] { ++runtime_inits_; };
    o.tick = 5ms;
    return o;
  }

  std::unique_ptr<Engine> make_engine(const PoolModel& model) {
    std::unique_lock lock(mu_);
    loads_.push_back(model.name);
    gate_cv_.wait(lock, [&] { return !hold_loads_; });
    if (model.name == failing_) throw std::runtime_error("cannot load model " + model.path);
    auto engine = std::make_unique<FakeEngine>(model.engine.slots, model.engine.ctx_per_slot,
                                               model.engine.batch_tokens, model.name);
    engine->set_costs(step_cost_, std::chrono::microseconds(0));
    return engine;
  }

  void hold_loads(bool hold) {
    {
      std::lock_guard lock(mu_);
      hold_loads_ = hold;
    }
    gate_cv_.notify_all();
  }
  std::vector<std::string> loads() {
    std::lock_guard lock(mu_);
    return loads_;
  }

  Submitted submit(const std::string& model, const std::string& id, int max_tokens = 3,
                   std::optional<std::int64_t> keep_alive_ms = std::nullopt) {
    ValidatedRequest r;
    r.model = model;
    r.params.max_tokens = max_tokens;
    r.params.keep_alive_ms = keep_alive_ms;
    r.prompt_tokens = {'a', 'b', 'c'};
    auto sink = std::make_shared<RecordingSink>();
    auto job = std::make_shared<Job>(id, std::move(r), std::nullopt, sink);
    EXPECT_EQ(queues_.push(job), PushResult::accepted);
    return {job, sink};
  }

  ModelState state_of(const ModelPool& pool, const std::string& name) {
    for (const ModelStatus& s : pool.snapshot())
      if (s.name == name) return s.state;
    return ModelState::cold;
  }

  telemetry::PoolModelMetrics& pool_metrics(const std::string& name) {
    return metrics_.pool_model(name);
  }

  ModelQueues queues_{{"a", "b", "c"}, 64};
  telemetry::ServiceMetrics metrics_;
  std::mutex mu_;
  std::condition_variable gate_cv_;
  bool hold_loads_ = false;            // loads wait until released
  std::string failing_;                // the model whose loads throw
  std::vector<std::string> loads_;     // models loaded, in order
  std::chrono::microseconds step_cost_{0};
  int runtime_inits_ = 0;
};

TEST_F(ModelPoolTest, AColdModelIsLoadedForItsJobsWhichAreToldFirst) {
  ModelPool pool(options(2));
  EXPECT_EQ(runtime_inits_, 1);
  pool.start();
  EXPECT_FALSE(pool.loaded("a"));
  Submitted first = submit("a", "j1");
  ASSERT_TRUE(first.sink->wait_end());
  ASSERT_NE(first.sink->last_as<DoneEvent>(), nullptr);
  EXPECT_EQ(count_of<LoadingEvent>(*first.sink), 1);
  EXPECT_EQ(std::get<LoadingEvent>(first.sink->events()[0]).model, "a");
  EXPECT_LT(index_of<LoadingEvent>(*first.sink), index_of<StartedEvent>(*first.sink));
  EXPECT_TRUE(pool.loaded("a"));
  EXPECT_FALSE(pool.loaded("b"));
  EXPECT_EQ(pool.total_slots(), 2);
  // Warm now: the next job is not told anything about loading.
  Submitted second = submit("a", "j2");
  ASSERT_TRUE(second.sink->wait_end());
  EXPECT_EQ(count_of<LoadingEvent>(*second.sink), 0);
  EXPECT_EQ(loads(), std::vector<std::string>{"a"});
  EXPECT_EQ(pool_metrics("a").loads.value(), 1);
  EXPECT_EQ(pool_metrics("a").loaded.value(), 1);
  EXPECT_EQ(pool_metrics("a").load_seconds.snapshot().count, 1u);
  EXPECT_EQ(pool_metrics("b").loaded.value(), 0);
}

TEST_F(ModelPoolTest, PreloadsAreWarmWhenTheWaitReturns) {
  PoolOptions o = options(2);
  o.preload = {"b", "a"};
  ModelPool pool(std::move(o));
  pool.start();
  std::string error;
  ASSERT_TRUE(pool.wait_preloaded(error)) << error;
  EXPECT_TRUE(pool.loaded("a"));
  EXPECT_TRUE(pool.loaded("b"));
  EXPECT_FALSE(pool.loaded("c"));
  EXPECT_EQ(loads(), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(pool.total_slots(), 4);
  EXPECT_EQ(pool.busy_slots(), 0);
}

TEST_F(ModelPoolTest, AFailedPreloadIsReported) {
  failing_ = "a";
  PoolOptions o = options(1);
  o.preload = {"a"};
  ModelPool pool(std::move(o));
  pool.start();
  std::string error;
  EXPECT_FALSE(pool.wait_preloaded(error));
  EXPECT_NE(error.find("cannot load model /models/a.gguf"), std::string::npos) << error;
}

TEST_F(ModelPoolTest, TheLeastRecentlyUsedIdleModelMakesRoom) {
  ModelPool pool(options(2));
  pool.start();
  for (const char* model : {"a", "b", "a"}) {
    Submitted s = submit(model, std::string("on-") + model + std::to_string(loads().size()));
    ASSERT_TRUE(s.sink->wait_end());
    std::this_thread::sleep_for(30ms);  // several keeper looks apart
  }
  Submitted c = submit("c", "on-c");
  ASSERT_TRUE(c.sink->wait_end());
  ASSERT_NE(c.sink->last_as<DoneEvent>(), nullptr);
  EXPECT_TRUE(pool.loaded("a"));
  EXPECT_FALSE(pool.loaded("b"));  // used less recently than a
  EXPECT_TRUE(pool.loaded("c"));
  EXPECT_EQ(pool_metrics("b").evicted_lru.value(), 1);
  EXPECT_EQ(pool_metrics("b").loaded.value(), 0);
  EXPECT_EQ(pool_metrics("a").evicted_lru.value(), 0);
  EXPECT_EQ(loads(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(ModelPoolTest, ABusyModelIsNeverEvictedTheColdOneWaitsItsTurn) {
  step_cost_ = std::chrono::microseconds(3000);
  ModelPool pool(options(1));
  pool.start();
  Submitted long_job = submit("a", "long", 120);  // ~0.4 s of decoding
  ASSERT_TRUE(eventually([&] { return pool.busy_slots() == 1; }));
  Submitted waiting = submit("b", "waiting");
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(pool.loaded("a"));
  EXPECT_EQ(state_of(pool, "b"), ModelState::cold);
  EXPECT_EQ(pool.room("b"), 0);
  EXPECT_EQ(count_of<LoadingEvent>(*waiting.sink), 0);  // told when its load starts, not before
  ASSERT_TRUE(long_job.sink->wait_end());
  ASSERT_NE(long_job.sink->last_as<DoneEvent>(), nullptr);
  EXPECT_EQ(long_job.sink->last_as<DoneEvent>()->finish_reason, "length");
  ASSERT_TRUE(waiting.sink->wait_end());
  ASSERT_NE(waiting.sink->last_as<DoneEvent>(), nullptr);
  EXPECT_EQ(count_of<LoadingEvent>(*waiting.sink), 1);
  EXPECT_TRUE(pool.loaded("b"));
  EXPECT_FALSE(pool.loaded("a"));
  EXPECT_EQ(pool_metrics("a").evicted_lru.value(), 1);
}

TEST_F(ModelPoolTest, APinnedModelStaysAndNeverExpires) {
  PoolOptions o = options(1, 0ms);  // keep_alive 0: any other model would go at once
  o.preload = {"a"};
  o.pinned = {"a"};
  ModelPool pool(std::move(o));
  pool.start();
  std::string error;
  ASSERT_TRUE(pool.wait_preloaded(error)) << error;
  Submitted on_a = submit("a", "on-a");
  ASSERT_TRUE(on_a.sink->wait_end());
  Submitted on_b = submit("b", "on-b");
  std::this_thread::sleep_for(150ms);
  EXPECT_TRUE(pool.loaded("a"));
  EXPECT_FALSE(pool.loaded("b"));
  EXPECT_TRUE(on_b.sink->events().empty());  // neither loading nor started
  EXPECT_EQ(pool.room("b"), 0);
  EXPECT_EQ(pool.room("c"), 0);
  EXPECT_TRUE(queues_.remove("on-b"));
  EXPECT_EQ(pool.room("c"), 0);  // still no room: a is pinned
  EXPECT_EQ(pool_metrics("a").evicted_keep_alive.value(), 0);
}

TEST_F(ModelPoolTest, KeepAliveZeroUnloadsAsSoonAsIdle) {
  ModelPool pool(options(2));
  pool.start();
  Submitted s = submit("a", "once", 3, 0);
  ASSERT_TRUE(s.sink->wait_end());
  ASSERT_NE(s.sink->last_as<DoneEvent>(), nullptr);
  ASSERT_TRUE(eventually([&] { return !pool.loaded("a"); }, 1000ms));
  EXPECT_EQ(pool_metrics("a").evicted_keep_alive.value(), 1);
  EXPECT_EQ(pool_metrics("a").loaded.value(), 0);
  EXPECT_EQ(pool.total_slots(), 0);
  // Cold again: the next job loads it again and is told so.
  Submitted again = submit("a", "again");
  ASSERT_TRUE(again.sink->wait_end());
  EXPECT_EQ(count_of<LoadingEvent>(*again.sink), 1);
  EXPECT_EQ(pool_metrics("a").loads.value(), 2);
}

TEST_F(ModelPoolTest, TheLastJobsKeepAliveIsInForceElseTheDefault) {
  ModelPool pool(options(3, 60ms));
  pool.start();
  // No keep_alive: the default, 60 ms.
  ASSERT_TRUE(submit("a", "a1").sink->wait_end());
  // Negative: kept.
  ASSERT_TRUE(submit("b", "b1", 3, -1).sink->wait_end());
  ASSERT_TRUE(eventually([&] { return !pool.loaded("a"); }, 2000ms));
  std::this_thread::sleep_for(150ms);
  EXPECT_TRUE(pool.loaded("b"));
  for (const ModelStatus& s : pool.snapshot()) {
    if (s.name == "b") {
      EXPECT_EQ(s.keep_alive, milliseconds(-1));
    }
  }
  // The most recent job decides: b goes once its job with keep_alive 0 is done.
  ASSERT_TRUE(submit("b", "b2", 3, 0).sink->wait_end());
  ASSERT_TRUE(eventually([&] { return !pool.loaded("b"); }, 1000ms));
  EXPECT_EQ(pool_metrics("a").evicted_keep_alive.value(), 1);
  EXPECT_EQ(pool_metrics("b").evicted_keep_alive.value(), 1);
  EXPECT_EQ(pool_metrics("a").evicted_lru.value(), 0);
}

TEST_F(ModelPoolTest, AFailedLoadEndsItsWaitingJobsAndTheOthersGoOn) {
  failing_ = "b";
  ModelPool pool(options(2));
  pool.start();
  Submitted on_b = submit("b", "on-b");
  ASSERT_TRUE(on_b.sink->wait_end());
  const ErrorEvent* error = on_b.sink->last_as<ErrorEvent>();
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->code, "model_load_failed");
  EXPECT_NE(error->message.find("cannot load model /models/b.gguf"), std::string::npos);
  EXPECT_EQ(count_of<LoadingEvent>(*on_b.sink), 1);
  EXPECT_FALSE(pool.loaded("b"));
  Submitted on_a = submit("a", "on-a");
  ASSERT_TRUE(on_a.sink->wait_end());
  EXPECT_NE(on_a.sink->last_as<DoneEvent>(), nullptr);
  EXPECT_EQ(pool_metrics("b").loads.value(), 0);
  EXPECT_EQ(queues_.depth(), 0);
}

TEST_F(ModelPoolTest, EveryJobWaitingForALoadIsToldOnceEvenLateOnes) {
  hold_loads(true);
  ModelPool pool(options(2));
  pool.start();
  Submitted early = submit("a", "early");
  ASSERT_TRUE(eventually([&] { return state_of(pool, "a") == ModelState::loading; }));
  Submitted late = submit("a", "late");
  ASSERT_TRUE(eventually([&] { return count_of<LoadingEvent>(*late.sink) == 1; }));
  EXPECT_FALSE(pool.loaded("a"));
  EXPECT_EQ(pool.room("a"), 0);
  EXPECT_EQ(pool.total_slots(), 0);
  hold_loads(false);
  ASSERT_TRUE(early.sink->wait_end());
  ASSERT_TRUE(late.sink->wait_end());
  EXPECT_EQ(count_of<LoadingEvent>(*early.sink), 1);
  EXPECT_EQ(count_of<LoadingEvent>(*late.sink), 1);
  EXPECT_NE(late.sink->last_as<DoneEvent>(), nullptr);
}

TEST_F(ModelPoolTest, ALoadingModelIsNotEvictedForAnother) {
  hold_loads(true);
  ModelPool pool(options(1));
  pool.start();
  Submitted on_a = submit("a", "on-a");
  ASSERT_TRUE(eventually([&] { return state_of(pool, "a") == ModelState::loading; }));
  Submitted on_b = submit("b", "on-b");
  std::this_thread::sleep_for(60ms);
  EXPECT_EQ(loads(), std::vector<std::string>{"a"});
  EXPECT_EQ(pool.room("b"), 0);
  hold_loads(false);
  ASSERT_TRUE(on_a.sink->wait_end());
  ASSERT_TRUE(on_b.sink->wait_end());
  EXPECT_EQ(loads(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(ModelPoolTest, RoomIsWhatCouldStartNow) {
  step_cost_ = std::chrono::microseconds(3000);
  PoolOptions o = options(1);
  o.preload = {"a"};
  ModelPool pool(std::move(o));
  pool.start();
  std::string error;
  ASSERT_TRUE(pool.wait_preloaded(error)) << error;
  EXPECT_EQ(pool.room("a"), 2);  // two free slots
  EXPECT_EQ(pool.room("b"), 1);  // a is idle: it could make room
  EXPECT_EQ(pool.room("nope"), 0);
  Submitted busy = submit("a", "busy", 150);
  ASSERT_TRUE(eventually([&] { return pool.busy_slots() == 1; }));
  EXPECT_EQ(pool.room("a"), 1);
  EXPECT_EQ(pool.room("b"), 0);  // a is busy and max_loaded is 1
  busy.job->cancel();
  ASSERT_TRUE(busy.sink->wait_end());
}

TEST_F(ModelPoolTest, StopEndsRunningJobsWithShuttingDown) {
  step_cost_ = std::chrono::microseconds(3000);
  ModelPool pool(options(1));
  pool.start();
  Submitted running = submit("a", "running", 200);
  ASSERT_TRUE(eventually([&] { return pool.busy_slots() == 1; }));
  pool.stop();
  ASSERT_TRUE(running.sink->wait_end());
  ASSERT_NE(running.sink->last_as<ErrorEvent>(), nullptr);
  EXPECT_EQ(running.sink->last_as<ErrorEvent>()->code, "shutting_down");
  EXPECT_FALSE(pool.loaded("a"));
  EXPECT_EQ(pool_metrics("a").loaded.value(), 0);
  pool.stop();  // idempotent
}

TEST_F(ModelPoolTest, RefusesOptionsItCannotKeep) {
  const auto refused = [&](const std::function<void(PoolOptions&)>& change) {
    PoolOptions o = options(1);
    change(o);
    EXPECT_THROW(ModelPool pool(std::move(o)), std::invalid_argument);
  };
  refused([](PoolOptions& o) { o.make_engine = nullptr; });
  refused([](PoolOptions& o) { o.max_loaded = 0; });
  refused([](PoolOptions& o) { o.preload = {"z"}; });
  refused([](PoolOptions& o) { o.pinned = {"a", "b"}; });
  refused([](PoolOptions& o) { o.models[1].name = "a"; });
  refused([](PoolOptions& o) { o.models[0].inbox = nullptr; });
  PoolOptions o = options(1);
  o.models[2].name.clear();  // the file stem then
  ModelPool pool(std::move(o));
  EXPECT_EQ(pool.snapshot()[2].name, "c");
}

}  // namespace
}  // namespace llmq
