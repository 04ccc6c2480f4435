#include "engine/model_catalog.h"

#include <algorithm>
#include <stdexcept>

namespace llmq {
namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

}  // namespace

std::vector<ModelAlias> parse_model_aliases(std::string_view spec,
                                            const std::vector<std::string>& served) {
  std::vector<ModelAlias> aliases;
  while (!spec.empty()) {
    const std::size_t comma = spec.find(',');
    const std::string_view pair = trim(spec.substr(0, comma));
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    if (pair.empty()) continue;
    const auto bad = [&](const std::string& why) {
      return std::invalid_argument("--model-alias " + std::string(pair) + ": " + why);
    };
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos) throw bad("must be NAME=MODEL");
    ModelAlias alias{std::string(trim(pair.substr(0, eq))), std::string(trim(pair.substr(eq + 1)))};
    if (alias.name.empty() || alias.model.empty()) throw bad("must be NAME=MODEL");
    if (alias.name.find_first_of("= \t") != std::string::npos)
      throw bad("an alias holds no '=' or space");
    if (std::ranges::find(served, alias.model) == served.end()) {
      std::string ids;
      for (const std::string& id : served) ids += (ids.empty() ? "" : ", ") + id;
      throw bad("'" + alias.model + "' is not a served model (served: " + ids + ")");
    }
    if (std::ranges::find(served, alias.name) != served.end())
      throw bad("'" + alias.name + "' is the id of a served model");
    if (std::ranges::find(aliases, alias.name, &ModelAlias::name) != aliases.end())
      throw bad("'" + alias.name + "' is given twice");
    aliases.push_back(std::move(alias));
  }
  return aliases;
}

}  // namespace llmq
