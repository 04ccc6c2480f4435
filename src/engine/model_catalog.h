// ModelCatalog: the models a service answers for, as the HTTP side sees them: each one's
// read-only half (ModelText: in a gateway loaded vocab-only) and the context a job may fill on
// the workers. The first is the default, for requests that name none. Whether a model is in
// memory right now (the warm pool) is asked of `loaded`.
//
// Immutable once built; safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model_text.h"

namespace llmq {

struct ServedModel {
  const ModelText* text = nullptr;  // vocabulary, chat template, metadata (not owned)
  std::int32_t ctx_per_slot = 0;    // tokens one job may hold (prompt + completion)
};

class ModelCatalog {
 public:
  // `models` must not be empty. `loaded`: whether a model (by name) is in memory now; null:
  // every model counts as loaded.
  explicit ModelCatalog(std::vector<ServedModel> models,
                        std::function<bool(const std::string&)> loaded = nullptr)
      : models_(std::move(models)), loaded_(std::move(loaded)) {}

  const ServedModel& default_model() const { return models_.front(); }
  const std::vector<ServedModel>& all() const { return models_; }
  // The model clients call `name`; null when none is served by that name.
  const ServedModel* find(std::string_view name) const {
    for (const ServedModel& m : models_)
      if (m.text->info().name == name) return &m;
    return nullptr;
  }
  bool loaded(const std::string& name) const { return !loaded_ || loaded_(name); }

 private:
  std::vector<ServedModel> models_;
  std::function<bool(const std::string&)> loaded_;
};

}  // namespace llmq
