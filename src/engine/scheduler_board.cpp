// The scheduler's published view of its slots (engine/slot_board.h), for the status page.
#include "engine/elapsed.h"
#include "engine/scheduler.h"
#include "engine/scheduler_slot.h"

namespace llmq {

void Scheduler::publish_slots() const {
  if (options_.slot_board == nullptr) return;
  std::vector<SlotView> views;
  views.reserve(slots_.size());
  for (const auto& slot : slots_) {
    SlotView& v = views.emplace_back();
    v.slot = slot->id;
    v.model = engine_.info().name;
    if (!slot->busy()) continue;
    v.state = slot->prefilling() ? "prefill" : "generating";
    v.job_id = slot->job->id();
    v.tokens = slot->generated;
    v.started = slot->started;
    const double decode_s = seconds_between(slot->first_token, slot->last_token);
    if (slot->generated > 1 && decode_s > 0) v.tokens_per_s = (slot->generated - 1) / decode_s;
  }
  options_.slot_board->publish(engine_.info().name, std::move(views));
}

}  // namespace llmq
