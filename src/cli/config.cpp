// The command line of `llmq`. CLI11 parses the argv syntax only; the environment and the TOML
// file are resolved here, because CLI11 2.1 applies its config file before the environment
// (the wrong precedence) and reads the environment with getenv (not injectable for tests).
#include "cli/config.h"

#include <CLI/CLI.hpp>
#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <vector>

namespace llmq {
namespace {

constexpr int kExitUsage = 2;

// A usage error; parse_command_line prints it as one line and exits with 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Shows a secret in a log line without revealing it.
using Masker = std::string (*)(std::string_view value);

// "https://user:pw@host:9200/x" -> "https://***@host:9200/x". The last '@' before any query is
// taken (not just within the RFC authority) so an unencoded '/' in a password still gets masked.
std::string mask_url_credentials(std::string_view url) {
  const std::size_t scheme = url.find("://");
  const std::size_t start = scheme == std::string_view::npos ? 0 : scheme + 3;
  const std::size_t at = url.substr(0, url.find_first_of("?#", start)).rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url);
  return std::string(url.substr(0, start)) + "***" + std::string(url.substr(at));
}

// Secrets are never shown, not even in part.
std::string mask_secret(std::string_view) { return "***"; }

template <class Config>
using Field = std::variant<std::string Config::*, std::int32_t Config::*, std::int64_t Config::*>;

// One flag of a subcommand. The name is also the file key (with '-' or '_') and, upper-cased
// with '_', the suffix of its LLMQ_ environment variable.
template <class Config>
struct OptionSpec {
  std::string_view name;
  std::string_view help;  // one line for --help; the default is appended
  Field<Config> field;
  std::int64_t min = 0;  // numeric fields: inclusive range
  std::int64_t max = 0;
  std::span<const std::string_view> choices = {};  // string fields: allowed values; empty: any
  Masker mask = nullptr;                           // secret fields: how describe() shows them
};

constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * kKiB;
constexpr std::int64_t kGiB = 1024 * kMiB;
constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn",
                                                        "error"};

using Serve = ServeConfig;
constexpr OptionSpec<Serve> kServeOptions[] = {
    {.name = "model", .help = "GGUF model file", .field = &Serve::model},
    {.name = "host", .help = "listen address", .field = &Serve::host},
    {.name = "port", .help = "listen port (0: any free port)", .field = &Serve::port, .max = 65535},
    {.name = "slots", .help = "sequences decoded concurrently", .field = &Serve::slots, .min = 1,
     .max = 256},
    {.name = "threads", .help = "CPU threads for decoding (0: all cores)", .field = &Serve::threads,
     .max = 1024},
    {.name = "ctx-size", .help = "tokens per slot (prompt + completion)", .field = &Serve::ctx_size,
     .min = 16, .max = 1048576},
    {.name = "batch-size", .help = "most tokens in one decode step", .field = &Serve::batch_size,
     .min = 1, .max = 65536},
    {.name = "queue-max", .help = "waiting jobs before 429 queue_full", .field = &Serve::queue_max,
     .max = 1000000},
    {.name = "ping-interval-ms", .help = "SSE ping period while waiting or idle",
     .field = &Serve::ping_interval_ms, .min = 10, .max = 3600000},
    {.name = "elastic-url", .help = "Elasticsearch base URL (empty: off)",
     .field = &Serve::elastic_url, .mask = mask_url_credentials},
    {.name = "elastic-api-key", .help = "Elasticsearch API key (the encoded id:key)",
     .field = &Serve::elastic_api_key, .mask = mask_secret},
    {.name = "elastic-user", .help = "Elasticsearch basic-auth user (when no API key)",
     .field = &Serve::elastic_user},
    {.name = "elastic-password", .help = "Elasticsearch basic-auth password",
     .field = &Serve::elastic_password, .mask = mask_secret},
    {.name = "elastic-ca-file", .help = "PEM bundle to verify Elasticsearch with",
     .field = &Serve::elastic_ca_file},
    {.name = "spool-dir", .help = "where documents wait for Elasticsearch (or a later replay)",
     .field = &Serve::spool_dir},
    {.name = "snapshot-interval-ms", .help = "period of the runtime snapshot documents",
     .field = &Serve::snapshot_interval_ms, .min = 100, .max = 3600000},
    {.name = "service-name", .help = "service.name of every document",
     .field = &Serve::service_name},
    {.name = "max-body-bytes", .help = "request body limit (413 past it)",
     .field = &Serve::max_body_bytes, .min = 1, .max = kGiB},
    {.name = "max-header-bytes", .help = "request header limit (431 past it)",
     .field = &Serve::max_header_bytes, .min = kKiB, .max = kMiB},
    {.name = "header-timeout-ms",
     .help = "a request's headers must arrive within this, from accept or its first byte",
     .field = &Serve::header_timeout_ms, .min = 100, .max = 86400000},
    {.name = "body-timeout-ms", .help = "a request's body must arrive within this",
     .field = &Serve::body_timeout_ms, .min = 100, .max = 86400000},
    {.name = "idle-timeout-ms",
     .help = "a keep-alive connection without a new request is closed after this",
     .field = &Serve::idle_timeout_ms, .min = 100, .max = 86400000},
    {.name = "send-timeout-ms", .help = "a write the client has not taken within this cuts the connection",
     .field = &Serve::send_timeout_ms, .min = 100, .max = 86400000},
    {.name = "max-connections", .help = "connections served at once (past it: 503 and close)",
     .field = &Serve::max_connections, .min = 1, .max = 1000000},
    {.name = "max-stream-buffer-bytes",
     .help = "bytes a streaming client may leave unread before it is cut and its job cancelled",
     .field = &Serve::max_stream_buffer_bytes, .min = 4 * kKiB, .max = kGiB},
    {.name = "timeout-ms", .help = "default whole-request deadline (0: none)",
     .field = &Serve::timeout_ms, .max = 86400000},
    {.name = "default-max-tokens", .help = "max_tokens when a request gives none",
     .field = &Serve::default_max_tokens, .min = 1, .max = 1048576},
    {.name = "http-threads", .help = "threads running the HTTP I/O loop",
     .field = &Serve::http_threads, .min = 1, .max = 64},
    {.name = "log-level", .help = "trace, debug, info, warn or error", .field = &Serve::log_level,
     .choices = kLogLevels},
};

// Lets apply() narrow to int32 with a plain cast once the range check passed.
template <class Config, std::size_t N>
consteval bool ranges_fit_fields(const OptionSpec<Config> (&specs)[N]) {
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
static_assert(ranges_fit_fields(kServeOptions), "an option's range does not fit its field");

// The top-level TOML tables that belong to a subcommand. Add new subcommands here so their
// table in a shared file is not an unknown key for the others.
constexpr std::string_view kCommandNames[] = {"serve"};

template <class Config>
bool is_numeric(const OptionSpec<Config>& spec) {
  return !std::holds_alternative<std::string Config::*>(spec.field);
}

std::string env_name(std::string_view flag) {
  std::string name = "LLMQ_";
  for (char c : flag) name += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return name;
}

// A value before it is checked: text from the command line or environment, or a TOML value
// already type-checked. `where` prefixes error messages and names the source.
struct RawValue {
  std::variant<std::int64_t, std::string> value;
  std::string where;
};

[[noreturn]] void throw_range(const RawValue& raw, std::string_view flag, std::int64_t min,
                              std::int64_t max, const std::string& got) {
  std::ostringstream msg;
  msg << raw.where << "--" << flag << " must be between " << min << " and " << max << " (got "
      << got << ")";
  throw UsageError(msg.str());
}

template <class Config>
std::int64_t checked_integer(const OptionSpec<Config>& spec, const RawValue& raw) {
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
    if (error == std::errc::result_out_of_range)
      throw_range(raw, spec.name, spec.min, spec.max, text);
  }
  if (n < spec.min || n > spec.max)
    throw_range(raw, spec.name, spec.min, spec.max, std::to_string(n));
  return n;
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
        else
          config.*member = static_cast<T>(checked_integer(spec, raw));
      },
      spec.field);
}

template <class Config>
std::string field_text(const Config& config, const OptionSpec<Config>& spec) {
  return std::visit(
      [&](auto member) {
        if constexpr (std::is_same_v<std::remove_cvref_t<decltype(config.*member)>, std::string>)
          return config.*member;
        else
          return std::to_string(config.*member);
      },
      spec.field);
}

// ---- The TOML file -------------------------------------------------------------------------

using FileValues = std::map<std::string_view, RawValue>;  // by option name

toml::table parse_toml_file(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw UsageError("cannot read config file " + path + ": is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read config file " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return toml::parse(text.str(), path);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    std::ostringstream msg;
    msg << path << ":" << begin.line << ":" << begin.column << ": " << e.description();
    throw UsageError(msg.str());
  }
}

// Reads one table's keys into `out`, type-checked against the specs.
template <class Config>
void collect_table(const toml::table& table, std::string_view section, const std::string& path,
                   std::span<const OptionSpec<Config>> specs, FileValues& out) {
  std::map<std::string_view, std::string> seen;  // option name -> key as written
  for (const auto& [key, node] : table) {
    if (section.empty() && node.is_table() &&
        std::ranges::find(kCommandNames, key.str()) != std::end(kCommandNames))
      continue;  // a subcommand's own table, read separately
    std::string name(key.str());
    std::ranges::replace(name, '_', '-');
    const std::string shown = section.empty() ? std::string(key.str())
                                              : std::string(section) + "." + std::string(key.str());
    const auto spec = std::ranges::find(specs, name, &OptionSpec<Config>::name);
    if (spec == specs.end()) throw UsageError(path + ": unknown key \"" + shown + "\"");
    if (auto [it, fresh] = seen.emplace(spec->name, shown); !fresh)
      throw UsageError(path + ": key \"" + shown + "\" repeats \"" + it->second + "\"");
    RawValue raw{.value = {}, .where = path + ": key \"" + shown + "\": "};
    if (is_numeric(*spec) && node.is_integer())
      raw.value = node.as_integer()->get();
    else if (!is_numeric(*spec) && node.is_string())
      raw.value = node.as_string()->get();
    else {
      std::ostringstream msg;
      msg << path << ": key \"" << shown << "\" must be "
          << (is_numeric(*spec) ? "an integer" : "a string") << ", not " << node.type();
      throw UsageError(msg.str());
    }
    out.insert_or_assign(spec->name, std::move(raw));
  }
}

// Keys may sit at the top level or under [command]; the latter win.
template <class Config>
FileValues read_config_file(const std::string& path, std::string_view command,
                            std::span<const OptionSpec<Config>> specs) {
  const toml::table root = parse_toml_file(path);
  FileValues values;
  collect_table(root, "", path, specs, values);
  if (const toml::table* section = root[command].as_table())
    collect_table(*section, command, path, specs, values);
  return values;
}

// ---- Subcommands ---------------------------------------------------------------------------

CLI::Option* add_flag(CLI::App& command, std::string_view name, std::string_view type,
                      const std::string& help) {
  return command.add_option("--" + std::string(name), help)
      ->type_name(std::string(type))
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated flag: last wins
}

// A subcommand whose flags fill a Config. New subcommands add a spec table and one Command.
template <class Config>
class Command {
 public:
  Command(CLI::App& app, std::string_view name, std::string_view help,
          std::span<const OptionSpec<Config>> specs, Config defaults)
      : name_(name), specs_(specs), defaults_(std::move(defaults)) {
    command_ = app.add_subcommand(std::string(name), std::string(help));
    command_->allow_extras(false);  // its own unknown flags are errors, not top-level extras
    for (const auto& spec : specs_) {
      const std::string shown = field_text(defaults_, spec);
      flags_.push_back(add_flag(*command_, spec.name, is_numeric(spec) ? "INT" : "TEXT",
                                std::string(spec.help) + " [default: " +
                                    (shown.empty() ? "none" : shown) + "]"));
    }
    config_flag_ = add_flag(*command_, "config", "FILE",
                            "TOML file with values for these flags [default: none]");
    command_->footer(
        "Each flag can also be set by the environment variable LLMQ_<FLAG> (e.g. LLMQ_CTX_SIZE, "
        "LLMQ_CONFIG) or by a key in the --config file (ctx-size or ctx_size, at the top level "
        "or under [" + name_ + "]).\nPrecedence: flag > environment > config file > default.");
  }

  bool selected() const { return command_->parsed(); }

  Config resolve(const EnvLookup& env) const {
    Config config = defaults_;
    if (auto file = given(config_flag_, "config", env))
      config.config_file = std::get<std::string>(file->value);
    const FileValues from_file = config.config_file.empty()
                                     ? FileValues{}
                                     : read_config_file(config.config_file, name_, specs_);
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      const auto& spec = specs_[i];
      if (auto value = given(flags_[i], spec.name, env))
        apply(config, spec, *value);
      else if (auto it = from_file.find(spec.name); it != from_file.end())
        apply(config, spec, it->second);
    }
    return config;
  }

 private:
  // The flag's value, else its environment variable's (empty counts as unset, as in CLI11).
  static std::optional<RawValue> given(const CLI::Option* flag, std::string_view name,
                                       const EnvLookup& env) {
    if (flag->count() > 0) return RawValue{.value = flag->as<std::string>(), .where = ""};
    const std::string var = env_name(name);
    if (auto value = env(var); value && !value->empty())
      return RawValue{.value = *value, .where = var + "=" + *value + ": "};
    return std::nullopt;
  }

  std::string name_;
  std::span<const OptionSpec<Config>> specs_;
  Config defaults_;
  CLI::App* command_ = nullptr;
  std::vector<CLI::Option*> flags_;  // parallel to specs_
  CLI::Option* config_flag_ = nullptr;
};

// Top-level extras are allowed by CLI11 so they get a clearer message here.
void check_top_level(const CLI::App& app) {
  const std::vector<std::string> extras = app.remaining();
  const bool chosen = !app.get_subcommands().empty();
  if (chosen && extras.empty()) return;
  std::string names;
  for (const CLI::App* command : app.get_subcommands([](const CLI::App*) { return true; }))
    names += (names.empty() ? "" : ", ") + command->get_name();
  const std::string hint = " (expected a subcommand: " + names + "; see 'llmq --help')";
  if (extras.empty()) throw UsageError("missing subcommand" + hint);
  const std::string& first = extras.front();
  if (!chosen && !first.starts_with('-'))
    throw UsageError("unknown subcommand '" + first + "'" + hint);
  throw UsageError("unexpected argument '" + first + "'" +
                   (chosen ? " before the subcommand; flags go after it" : hint));
}

ExitNow usage_error(std::string message) {
  std::ranges::replace(message, '\n', ' ');  // keep it to one line whatever the source
  std::cerr << "llmq: " << message << '\n';
  return ExitNow{kExitUsage};
}

std::string quoted_if_needed(const std::string& value) {
  if (value.find_first_of(" \t\"") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

CommandLine parse_command_line(int argc, const char* const* argv, const EnvLookup& env) {
  CLI::App app{"llmq: a queue-based LLM inference server for CPUs", "llmq"};
  ServeConfig serve_defaults;
  serve_defaults.model = default_model_path(env);
  serve_defaults.spool_dir = default_spool_dir(env);
  Command<ServeConfig> serve(app, "serve", "run the HTTP inference server", kServeOptions,
                             std::move(serve_defaults));
  app.allow_extras();
  try {
    app.parse(argc, argv);
    check_top_level(app);
    if (serve.selected()) return serve.resolve(env);
    throw UsageError("no subcommand handled");  // unreachable while check_top_level is complete
  } catch (const CLI::Success& e) {  // --help
    app.exit(e, std::cout, std::cerr);
    return ExitNow{0};
  } catch (const CLI::ParseError& e) {
    const std::string help = serve.selected() ? "llmq serve --help" : "llmq --help";
    return usage_error(std::string(e.what()) + " (see '" + help + "')");
  } catch (const UsageError& e) {
    return usage_error(e.what());
  }
}

std::string describe(const ServeConfig& config) {
  std::string out;
  const auto add = [&](std::string_view name, const std::string& value) {
    std::string key(name);
    std::ranges::replace(key, '-', '_');
    out += (out.empty() ? "" : " ") + key + "=" + quoted_if_needed(value);
  };
  for (const auto& spec : kServeOptions) {
    const std::string value = field_text(config, spec);
    add(spec.name, spec.mask != nullptr && !value.empty() ? spec.mask(value) : value);
  }
  add("config_file", config.config_file);
  return out;
}

namespace {
// ${XDG_CACHE_HOME:-$HOME/.cache}/llmq; empty counts as unset, as in the set-up's ${VAR:-x}.
std::filesystem::path llmq_cache_dir(const EnvLookup& env) {
  std::filesystem::path cache = env("XDG_CACHE_HOME").value_or("");
  if (cache.empty()) cache = std::filesystem::path(env("HOME").value_or("")) / ".cache";
  return cache / "llmq";
}
}  // namespace

std::string default_model_path(const EnvLookup& env) {
  std::filesystem::path dir = env("LLMQ_MODELS_DIR").value_or("");
  if (dir.empty()) dir = llmq_cache_dir(env) / "models";
  return (dir / kDefaultModelFile).string();
}

std::string default_spool_dir(const EnvLookup& env) {
  return (llmq_cache_dir(env) / "spool").string();
}

}  // namespace llmq
