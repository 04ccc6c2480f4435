// The machinery behind every `llmq` subcommand: a table of OptionSpecs describes a command's
// flags once, and from it come the CLI11 flags, the LLMQ_* environment variables, the TOML keys,
// range and choice checks, --help with defaults, and the masked one-line description.
//
// CLI11 parses the argv syntax only; the environment and the TOML file are resolved here, because
// CLI11 2.1 applies its config file before the environment (the wrong precedence) and reads the
// environment with getenv (not injectable for tests).
//
// Internal to src/cli (included by config.cpp only).
#pragma once

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "cli/config.h"

namespace llmq::cli {

// A usage error; parse_command_line prints it as one line and exits with 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Shows a secret in a log line without revealing it.
using Masker = std::string (*)(std::string_view value);

template <class Config>
using Field = std::variant<std::string Config::*, std::int32_t Config::*, std::int64_t Config::*,
                           bool Config::*, double Config::*>;

// One flag of a subcommand. The name is also the file key (with '-' or '_') and, upper-cased
// with '_', the suffix of its LLMQ_ environment variable. A bool field is a switch: `--name`
// alone sets it; the environment and the file take true/false (or 1/0, yes/no, on/off).
template <class Config>
struct OptionSpec {
  std::string_view name;
  std::string_view help;  // one line for --help; the default is appended
  Field<Config> field;
  std::int64_t min = 0;  // numeric fields: inclusive range
  std::int64_t max = 0;
  std::span<const std::string_view> choices = {};  // string fields: allowed values; empty: any
  Masker mask = nullptr;                           // secret fields: how describe() shows them
  // Text fields holding a comma-separated list: the flag may be given again, each time adding
  // to the list (instead of the last one winning).
  bool repeatable = false;
};

// A table as the span every function here takes.
template <class Config, std::size_t N>
std::span<const OptionSpec<Config>> specs(const std::array<OptionSpec<Config>, N>& table) {
  return table;
}

template <class Config, std::size_t A, std::size_t B>
constexpr std::array<OptionSpec<Config>, A + B> join(const std::array<OptionSpec<Config>, A>& a,
                                                     const std::array<OptionSpec<Config>, B>& b) {
  std::array<OptionSpec<Config>, A + B> out{};
  std::copy(a.begin(), a.end(), out.begin());
  std::copy(b.begin(), b.end(), out.begin() + A);
  return out;
}

// Lets apply() narrow to int32 with a plain cast once the range check passed.
template <class Config, std::size_t N>
consteval bool ranges_fit_fields(const std::array<OptionSpec<Config>, N>& specs) {
  for (const auto& spec : specs) {
    const std::int64_t lo = spec.min;
    const std::int64_t hi = spec.max;
    if (lo > hi) return false;
    if (std::holds_alternative<std::int32_t Config::*>(spec.field) &&
        (lo < INT32_MIN || hi > INT32_MAX))
      return false;
  }
  return true;
}

enum class Kind { text, integer, boolean, real };

template <class Config>
Kind kind_of(const OptionSpec<Config>& spec) {
  if (std::holds_alternative<std::string Config::*>(spec.field)) return Kind::text;
  if (std::holds_alternative<bool Config::*>(spec.field)) return Kind::boolean;
  if (std::holds_alternative<double Config::*>(spec.field)) return Kind::real;
  return Kind::integer;
}

inline std::string env_name(std::string_view flag) {
  std::string name = "LLMQ_";
  for (char c : flag) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

// A value before it is checked: text from the command line or environment, or a TOML value
// already type-checked. `where` prefixes error messages and names the source.
struct RawValue {
  std::variant<std::int64_t, std::string, bool, double> value;
  std::string where;
};

template <class Config>
std::int64_t checked_integer(const OptionSpec<Config>& spec, const RawValue& raw) {
  const auto out_of_range = [&](const std::string& got) {
    std::ostringstream msg;
    msg << raw.where << "--" << spec.name << " must be between " << spec.min << " and "
        << spec.max << " (got " << got << ")";
    return UsageError(msg.str());
  };
  std::int64_t n = 0;
  if (const auto* number = std::get_if<std::int64_t>(&raw.value)) {
    n = *number;
  } else {
    const std::string& text = std::get<std::string>(raw.value);
    const char* end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, n);
    if (stop != end || text.empty())
      throw UsageError(raw.where + "--" + std::string(spec.name) + " must be an integer (got \"" +
                       text + "\")");
    if (error == std::errc::result_out_of_range) throw out_of_range(text);
  }
  if (n < spec.min || n > spec.max) throw out_of_range(std::to_string(n));
  return n;
}

template <class Config>
double checked_real(const OptionSpec<Config>& spec, const RawValue& raw) {
  double x = 0;
  if (const auto* real = std::get_if<double>(&raw.value)) {
    x = *real;
  } else if (const auto* whole = std::get_if<std::int64_t>(&raw.value)) {
    x = static_cast<double>(*whole);
  } else {
    const std::string& text = std::get<std::string>(raw.value);
    const char* end = text.data() + text.size();
    const auto [stop, error] = std::from_chars(text.data(), end, x);
    if (stop != end || text.empty() || error != std::errc{})
      throw UsageError(raw.where + "--" + std::string(spec.name) + " must be a number (got \"" +
                       text + "\")");
  }
  if (!(x >= static_cast<double>(spec.min) && x <= static_cast<double>(spec.max))) {
    std::ostringstream msg;
    msg << raw.where << "--" << spec.name << " must be between " << spec.min << " and " << spec.max
        << " (got " << x << ")";
    throw UsageError(msg.str());
  }
  return x;
}

template <class Config>
bool checked_bool(const OptionSpec<Config>& spec, const RawValue& raw) {
  if (const auto* flag = std::get_if<bool>(&raw.value)) return *flag;
  std::string text = std::get<std::string>(raw.value);
  std::ranges::transform(text, text.begin(), [](unsigned char c) { return std::tolower(c); });
  for (std::string_view yes : {"1", "true", "yes", "on"})
    if (text == yes) return true;
  for (std::string_view no : {"0", "false", "no", "off"})
    if (text == no) return false;
  throw UsageError(raw.where + "--" + std::string(spec.name) +
                   " must be true or false (got \"" + std::get<std::string>(raw.value) + "\")");
}

template <class Config>
std::string checked_choice(const OptionSpec<Config>& spec, const RawValue& raw) {
  const std::string& text = std::get<std::string>(raw.value);
  if (spec.choices.empty()) return text;
  std::string allowed;
  for (std::string_view choice : spec.choices) {
    if (choice == text) return text;
    allowed += (allowed.empty() ? "" : ", ") + std::string(choice);
  }
  throw UsageError(raw.where + "--" + std::string(spec.name) + " must be one of " + allowed +
                   " (got \"" + text + "\")");
}

template <class Config>
void apply(Config& config, const OptionSpec<Config>& spec, const RawValue& raw) {
  std::visit(
      [&](auto member) {
        using T = std::remove_reference_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<T, std::string>)
          config.*member = checked_choice(spec, raw);
        else if constexpr (std::is_same_v<T, bool>)
          config.*member = checked_bool(spec, raw);
        else if constexpr (std::is_same_v<T, double>)
          config.*member = checked_real(spec, raw);
        else
          config.*member = static_cast<T>(checked_integer(spec, raw));
      },
      spec.field);
}

template <class Config>
std::string field_text(const Config& config, const OptionSpec<Config>& spec) {
  return std::visit(
      [&](auto member) -> std::string {
        using T = std::remove_cvref_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<T, std::string>)
          return config.*member;
        else if constexpr (std::is_same_v<T, bool>)
          return config.*member ? "true" : "false";
        else if constexpr (std::is_same_v<T, double>) {
          std::ostringstream out;
          out << config.*member;
          return out.str();
        } else
          return std::to_string(config.*member);
      },
      spec.field);
}

// ---- The TOML file -------------------------------------------------------------------------

// What every command of the binary knows, so a shared config file can hold keys for several
// commands: a key is an error only when no command knows it.
struct KnownKeys {
  std::set<std::string, std::less<>> options;    // option names of all commands
  std::set<std::string, std::less<>> sections;   // top-level tables that name a command
};

using FileValues = std::map<std::string_view, RawValue>;  // by option name

toml::table parse_toml_file(const std::string& path);

// The value of a TOML node for a field of `kind`, or nullopt when the type does not fit.
std::optional<std::variant<std::int64_t, std::string, bool, double>> toml_value(
    const toml::node& node, Kind kind);

// Reads one table's keys into `out`: those of `specs`, type-checked. In a shared table (the top
// level, [elastic]) others are skipped when another command knows them; in the command's own
// table ([elastic.setup], `own`) every other key is an error. Tables naming commands are skipped.
template <class Config>
void collect_table(const toml::table& table, const std::string& shown_prefix,
                   const std::string& path, std::span<const OptionSpec<Config>> specs,
                   const KnownKeys& known, bool own, FileValues& out) {
  std::map<std::string_view, std::string> seen;  // option name -> key as written
  for (const auto& [key, node] : table) {
    const std::string shown = shown_prefix + std::string(key.str());
    if (node.is_table()) {
      if (known.sections.contains(key.str())) continue;  // a (sub)command's table
      throw UsageError(path + ": unknown table \"" + shown + "\"");
    }
    std::string name(key.str());
    std::ranges::replace(name, '_', '-');
    const auto spec = std::ranges::find(specs, name, &OptionSpec<Config>::name);
    if (spec == specs.end()) {
      if (!own && known.options.contains(name)) continue;  // another command's key
      throw UsageError(path + ": unknown key \"" + shown + "\"");
    }
    if (auto [it, fresh] = seen.emplace(spec->name, shown); !fresh)
      throw UsageError(path + ": key \"" + shown + "\" repeats \"" + it->second + "\"");
    const Kind kind = kind_of(*spec);
    auto value = toml_value(node, kind);
    if (!value) {
      std::ostringstream msg;
      msg << path << ": key \"" << shown << "\" must be "
          << (kind == Kind::integer   ? "an integer"
              : kind == Kind::boolean ? "a boolean"
              : kind == Kind::real    ? "a number"
                                      : "a string")
          << ", not " << node.type();
      throw UsageError(msg.str());
    }
    out.insert_or_assign(spec->name, RawValue{.value = std::move(*value),
                                              .where = path + ": key \"" + shown + "\": "});
  }
}

// Keys may sit at the top level or in the tables of the command's path ([elastic], then
// [elastic.setup]); the deeper ones win.
template <class Config>
FileValues read_config_file(const std::string& path, const std::vector<std::string>& command_path,
                            std::span<const OptionSpec<Config>> specs, const KnownKeys& known) {
  const toml::table root = parse_toml_file(path);
  FileValues values;
  collect_table(root, "", path, specs, known, /*own=*/false, values);
  const toml::table* table = &root;
  std::string prefix;
  for (std::size_t depth = 0; depth < command_path.size(); ++depth) {
    table = (*table)[command_path[depth]].as_table();
    if (table == nullptr) break;
    prefix += command_path[depth] + ".";
    collect_table(*table, prefix, path, specs, known, depth + 1 == command_path.size(), values);
  }
  return values;
}

// ---- Subcommands ---------------------------------------------------------------------------

// A subcommand whose flags fill a Config. New subcommands add a spec table and one Command.
template <class Config>
class Command {
 public:
  // `parent` is the app or the group command ("elastic"); `path` the words from the top
  // ({"elastic", "setup"}).
  Command(CLI::App& parent, std::vector<std::string> path, std::string_view help,
          std::span<const OptionSpec<Config>> specs, Config defaults, KnownKeys& known)
      : path_(std::move(path)), specs_(specs), defaults_(std::move(defaults)), known_(known) {
    command_ = parent.add_subcommand(path_.back(), std::string(help));
    command_->allow_extras(false);  // its own unknown flags are errors, not top-level extras
    for (const auto& spec : specs_) {
      known_.options.emplace(spec.name);
      const std::string shown = field_text(defaults_, spec);
      const std::string full_help =
          std::string(spec.help) + " [default: " + (shown.empty() ? "none" : shown) + "]";
      flags_.push_back(add(spec.name, kind_of(spec), full_help));
      if (spec.repeatable)
        flags_.back()->multi_option_policy(CLI::MultiOptionPolicy::Join)->delimiter(',');
    }
    for (const std::string& word : path_) known_.sections.insert(word);
    config_flag_ = add("config", Kind::text, "TOML file with values for these flags [default: none]")
                       ->type_name("FILE");
    std::string sections;
    for (const std::string& word : path_) sections += (sections.empty() ? "" : ".") + word;
    command_->footer(
        "Each flag can also be set by the environment variable LLMQ_<FLAG> (e.g. LLMQ_" +
        env_name(specs_.front().name).substr(5) + ", LLMQ_CONFIG) or by a key in the --config "
        "file (dashes or underscores, at the top level or under [" + sections + "]).\n"
        "Precedence: flag > environment > config file > default.");
  }

  bool selected() const { return command_->parsed(); }
  std::string help_hint() const {
    std::string words;
    for (const std::string& word : path_) words += " " + word;
    return "llmq" + words + " --help";
  }

  Config resolve(const EnvLookup& env) const {
    Config config = defaults_;
    if (auto file = given(config_flag_, "config", Kind::text, env))
      config.config_file = std::get<std::string>(file->value);
    const FileValues from_file =
        config.config_file.empty() ? FileValues{}
                                   : read_config_file(config.config_file, path_, specs_, known_);
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      const auto& spec = specs_[i];
      if (auto value = given(flags_[i], spec.name, kind_of(spec), env))
        apply(config, spec, *value);
      else if (auto it = from_file.find(spec.name); it != from_file.end())
        apply(config, spec, it->second);
    }
    return config;
  }

 private:
  CLI::Option* add(std::string_view name, Kind kind, const std::string& help) {
    const std::string flag = "--" + std::string(name);
    if (kind == Kind::boolean) return command_->add_flag(flag, help);
    return command_->add_option(flag, help)
        ->type_name(kind == Kind::integer ? "INT" : kind == Kind::real ? "NUMBER" : "TEXT")
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: last wins
  }

  // The flag's value, else its environment variable's (empty counts as unset, as in CLI11).
  static std::optional<RawValue> given(const CLI::Option* flag, std::string_view name, Kind kind,
                                       const EnvLookup& env) {
    if (flag->count() > 0) {
      if (kind == Kind::boolean) return RawValue{.value = flag->as<bool>(), .where = ""};
      return RawValue{.value = flag->as<std::string>(), .where = ""};
    }
    const std::string var = env_name(name);
    if (auto value = env(var); value && !value->empty())
      return RawValue{.value = *value, .where = var + "=" + *value + ": "};
    return std::nullopt;
  }

  std::vector<std::string> path_;
  std::span<const OptionSpec<Config>> specs_;
  Config defaults_;
  KnownKeys& known_;  // shared by all commands of the app; complete once all are built
  CLI::App* command_ = nullptr;
  std::vector<CLI::Option*> flags_;  // parallel to specs_
  CLI::Option* config_flag_ = nullptr;
};

// The effective configuration of one command as `key=value` pairs, secrets masked.
template <class Config>
std::string describe_fields(const Config& config, std::span<const OptionSpec<Config>> specs) {
  std::string out;
  const auto add = [&](std::string_view name, const std::string& value) {
    std::string key(name);
    std::ranges::replace(key, '-', '_');
    std::string shown = value;
    if (shown.find_first_of(" \t\"") != std::string::npos) {
      shown = "\"";
      for (char c : value) {
        if (c == '"' || c == '\\') shown += '\\';
        shown += c;
      }
      shown += "\"";
    }
    out += (out.empty() ? "" : " ") + key + "=" + shown;
  };
  for (const auto& spec : specs) {
    const std::string value = field_text(config, spec);
    add(spec.name, spec.mask != nullptr && !value.empty() ? spec.mask(value) : value);
  }
  add("config_file", config.config_file);
  return out;
}

}  // namespace llmq::cli
