#include "engine/slot_board.h"

namespace llmq {

void SlotBoard::publish(const std::string& model, std::vector<SlotView> slots) {
  std::lock_guard lock(mu_);
  by_model_[model] = std::move(slots);
}

void SlotBoard::forget(const std::string& model) {
  std::lock_guard lock(mu_);
  by_model_.erase(model);
}

std::vector<SlotView> SlotBoard::slots() const {
  std::lock_guard lock(mu_);
  std::vector<SlotView> out;
  for (const auto& [model, slots] : by_model_) out.insert(out.end(), slots.begin(), slots.end());
  return out;
}

}  // namespace llmq
