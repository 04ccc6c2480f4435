#include "engine/model_feed.h"

#include <algorithm>

namespace llmq {
namespace {

using std::chrono::milliseconds;

// The longest a pop waits on the inbox in one go: how long pausing may take.
constexpr milliseconds kSlice{10};

}  // namespace

ModelFeed::ModelFeed(InProcessQueue& inbox, milliseconds default_keep_alive)
    : inbox_(inbox), default_keep_alive_(default_keep_alive), keep_alive_(default_keep_alive) {}

std::optional<JobPtr> ModelFeed::pop(milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      changed_.wait_until(lock, deadline, [&] { return !paused_ || closed_; });
      if (paused_ || closed_) return std::nullopt;
      ++popping_;
    }
    // In slices, so that a pause waits for one slice at most.
    const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    std::optional<JobPtr> job = inbox_.pop(std::clamp(left, milliseconds(0), kSlice));
    bool pausing = false;
    {
      std::lock_guard lock(mu_);
      --popping_;
      pausing = paused_;
      if (job) {
        ++popped_;
        const std::optional<std::int64_t>& wanted = (*job)->request().params.keep_alive_ms;
        keep_alive_ = wanted ? milliseconds(*wanted) : default_keep_alive_;
      }
    }
    if (pausing) changed_.notify_all();
    if (job || Clock::now() >= deadline) return job;
  }
}

void ModelFeed::pause() {
  std::unique_lock lock(mu_);
  paused_ = true;
  changed_.wait(lock, [&] { return popping_ == 0; });
}

void ModelFeed::resume() {
  {
    std::lock_guard lock(mu_);
    paused_ = false;
  }
  changed_.notify_all();
}

void ModelFeed::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  changed_.notify_all();
}

std::uint64_t ModelFeed::popped() const {
  std::lock_guard lock(mu_);
  return popped_;
}

milliseconds ModelFeed::keep_alive() const {
  std::lock_guard lock(mu_);
  return keep_alive_;
}

}  // namespace llmq
