// ModelCatalog: the models a service answers for, as the HTTP side sees them: each one's
// read-only half (ModelText: in a gateway loaded vocab-only) and the context a job may fill on
// the workers. The first is the default, for requests that name none. Whether a model is in
// memory right now (the warm pool) is asked of `loaded`.
//
// Aliases (ModelAlias) are other names of served models: find() resolves them; a job always
// carries the served model's own id.
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

// Another name clients may use for a served model (--model-alias NAME=MODEL), for clients that
// hard-code one ("gpt-3.5-turbo").
struct ModelAlias {
  std::string name;   // what clients send
  std::string model;  // the served model's id it stands for
};

// `spec`: comma-separated NAME=MODEL pairs. Each MODEL must be one of `served` (model ids); a
// NAME may be neither a served id nor another alias's name, and holds no '=', ',' or space
// (a '/' is fine: "Qwen/Qwen2.5-7B-Instruct"). Throws std::invalid_argument naming the bad pair.
std::vector<ModelAlias> parse_model_aliases(std::string_view spec,
                                            const std::vector<std::string>& served);

class ModelCatalog {
 public:
  // `models` must not be empty. `loaded`: whether a model (by name) is in memory now; null:
  // every model counts as loaded.
  explicit ModelCatalog(std::vector<ServedModel> models,
                        std::function<bool(const std::string&)> loaded = nullptr,
                        std::vector<ModelAlias> aliases = {})
      : models_(std::move(models)), loaded_(std::move(loaded)), aliases_(std::move(aliases)) {}

  const ServedModel& default_model() const { return models_.front(); }
  const std::vector<ServedModel>& all() const { return models_; }
  // The model clients call `name` (its id, or an alias of it); null when none is served by
  // that name.
  const ServedModel* find(std::string_view name) const {
    for (const ServedModel& m : models_)
      if (m.text->info().name == name) return &m;
    for (const ModelAlias& alias : aliases_)
      if (alias.name == name) return find(alias.model);
    return nullptr;
  }
  const std::vector<ModelAlias>& aliases() const { return aliases_; }
  bool loaded(const std::string& name) const { return !loaded_ || loaded_(name); }

 private:
  std::vector<ServedModel> models_;
  std::function<bool(const std::string&)> loaded_;
  std::vector<ModelAlias> aliases_;  // each naming a model of models_
};

}  // namespace llmq
