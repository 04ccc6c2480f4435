// The command line of `llmq`: the option tables of each subcommand and their dispatch. The
// machinery that turns a table into flags, environment variables and file keys is command.h.
#include "cli/config.h"

#include <iostream>

#include "cli/command.h"
#include "cli/option_tables.h"
#include "util/keep_alive.h"
#include "util/url.h"

namespace llmq {
namespace cli {
namespace {

constexpr int kExitUsage = 2;

// Top-level extras are allowed by CLI11 so they get a clearer message here. `group` is the
// command chosen at the top ("elastic") when it has subcommands of its own.
void check_top_level(const CLI::App& app) {
  const std::vector<std::string> extras = app.remaining();
  const auto chosen = app.get_subcommands();
  const auto names_of = [](const CLI::App& parent) {
    std::string names;
    for (const CLI::App* command : parent.get_subcommands([](const CLI::App*) { return true; }))
      names += (names.empty() ? "" : ", ") + command->get_name();
    return names;
  };
  if (!chosen.empty()) {
    const CLI::App& group = *chosen.front();
    const bool has_children = !group.get_subcommands([](const CLI::App*) { return true; }).empty();
    if (has_children && group.get_subcommands().empty())
      throw UsageError("'" + group.get_name() + "' needs a subcommand: " + names_of(group) +
                       " (see 'llmq " + group.get_name() + " --help')");
    if (extras.empty()) return;
  }
  const std::string hint = " (expected a subcommand: " + names_of(app) + "; see 'llmq --help')";
  if (extras.empty()) throw UsageError("missing subcommand" + hint);
  const std::string& first = extras.front();
  if (chosen.empty() && !first.starts_with('-'))
    throw UsageError("unknown subcommand '" + first + "'" + hint);
  throw UsageError("unexpected argument '" + first + "'" +
                   (!chosen.empty() ? " before the subcommand; flags go after it" : hint));
}

ExitNow usage_error(std::string message) {
  std::ranges::replace(message, '\n', ' ');  // keep it to one line whatever the source
  std::cerr << "llmq: " << message << '\n';
  return ExitNow{kExitUsage};
}

// Time values of the data stream lifecycle: a positive integer and a unit (d, h, m, s, ms…).
void check_retention(std::string_view flag, const std::string& value) {
  if (value.empty()) return;
  std::size_t digits = 0;
  while (digits < value.size() && std::isdigit(static_cast<unsigned char>(value[digits]))) ++digits;
  const std::string unit = value.substr(digits);
  static constexpr std::string_view kUnits[] = {"d", "h", "m", "s", "ms", "micros", "nanos"};
  if (digits == 0 || value.find_first_not_of('0') >= digits ||
      std::ranges::find(kUnits, unit) == std::end(kUnits))
    throw UsageError("--" + std::string(flag) + " must be a duration such as 30d or 12h (got \"" +
                     value + "\")");
}

// Elasticsearch's rules for the namespace part of a data stream name, kept simple: lower-case
// letters, digits and '_', at most 100 bytes (no '-': it separates the name's parts).
void check_namespace(const std::string& value) {
  const bool ok = !value.empty() && value.size() <= 100 && value.front() != '_' &&
                  std::ranges::all_of(value, [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                  });
  if (!ok)
    throw UsageError("--elastic-namespace must be 1-100 lower-case letters, digits or '_', not "
                     "starting with '_' (got \"" + value + "\")");
}

// Kibana space ids: lower-case letters, digits, '_' and '-' (it goes into the URL path).
void check_nats_url(const std::string& url) {
  if (!url.starts_with("nats://") && !url.starts_with("tls://"))
    throw UsageError("--nats-url must be a nats:// or tls:// URL (got \"" + url + "\")");
}

void check_space(const std::string& value) {
  const bool ok = value.size() <= 100 && std::ranges::all_of(value, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  if (!ok)
    throw UsageError("--space must be a Kibana space id: lower-case letters, digits, '_' or '-' "
                     "(got \"" + value + "\")");
}

// The warm pool's flags against the models served: durations that parse, names that exist, no
// more preloaded or pinned models than may be loaded at once.
void check_pool_flags(const ServeConfig& config) {
  if (!parse_keep_alive(config.keep_alive))
    throw UsageError("--keep-alive must be a duration such as 5m, 30s, 0 or -1 (got \"" +
                     config.keep_alive + "\")");
  std::map<std::string, std::string> path_of;  // name -> path
  for (const std::string& path : served_model_paths(config)) {
    const auto [it, added] = path_of.emplace(model_name_of(path), path);
    if (!added)
      throw UsageError("two models are named " + it->first + ": " + it->second + " and " + path +
                       " (a model's name is its file stem)");
  }
  for (const auto& [flag, value] :
       {std::pair{"preload", &config.preload}, std::pair{"pin", &config.pin}}) {
    const std::vector<std::string> names = split_list(*value);
    for (const std::string& name : names) {
      if (!path_of.contains(name)) {
        std::string served;
        for (const auto& entry : path_of) served += (served.empty() ? "" : ", ") + entry.first;
        throw UsageError("--" + std::string(flag) + " names " + name +
                         ", which is not served (served: " + served + ")");
      }
    }
    if (std::ssize(names) > config.max_loaded)
      throw UsageError("--" + std::string(flag) + " names " + std::to_string(names.size()) +
                       " models, more than --max-loaded " + std::to_string(config.max_loaded));
  }
}

}  // namespace

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

std::optional<std::variant<std::int64_t, std::string, bool, double>> toml_value(
    const toml::node& node, Kind kind) {
  if (kind == Kind::integer && node.is_integer()) return node.as_integer()->get();
  if (kind == Kind::real && node.is_integer()) return static_cast<double>(node.as_integer()->get());
  if (kind == Kind::real && node.is_floating_point()) return node.as_floating_point()->get();
  if (kind == Kind::text && node.is_string()) return node.as_string()->get();
  if (kind == Kind::text && node.is_array()) {  // a list: its strings, comma-separated
    std::string joined;
    for (const toml::node& item : *node.as_array()) {
      if (!item.is_string()) return std::nullopt;
      joined += (joined.empty() ? "" : ",") + item.as_string()->get();
    }
    return joined;
  }
  if (kind == Kind::boolean && node.is_boolean()) return node.as_boolean()->get();
  return std::nullopt;
}

}  // namespace cli

using namespace cli;

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

CommandLine parse_command_line(int argc, const char* const* argv, const EnvLookup& env) {
  CLI::App app{"llmq: a queue-based LLM inference server for CPUs", "llmq"};
  KnownKeys known;
  ServeConfig serve_defaults;
  serve_defaults.model = default_model_path(env);
  serve_defaults.spool_dir = default_spool_dir(env);
  Command<ServeConfig> serve(app, {"serve"}, "run the HTTP inference server",
                             specs(kServeOptions), std::move(serve_defaults), known);

  // Scale-out: serve's flags, and where the queue lives.
  ServeConfig gateway_defaults;
  gateway_defaults.model = default_model_path(env);
  gateway_defaults.spool_dir = default_spool_dir(env);
  gateway_defaults.role = Role::gateway;
  Command<ServeConfig> gateway(
      app, {"gateway"},
      "run the HTTP front door of scale-out: requests queue in NATS JetStream, workers run them "
      "(no weights are loaded here)",
      specs(kScaleOutOptions), gateway_defaults, known);
  ServeConfig worker_defaults = gateway_defaults;
  worker_defaults.role = Role::worker;
  Command<ServeConfig> worker(
      app, {"worker"},
      "run an inference worker of scale-out: takes jobs from NATS JetStream for its models "
      "(--port serves /healthz, /readyz and /metrics)",
      specs(kScaleOutOptions), worker_defaults, known);

  CLI::App* elastic = app.add_subcommand("elastic", "Elasticsearch: index templates, spool replay");
  Command<ElasticSetupConfig> elastic_setup(
      *elastic, {"elastic", "setup"},
      "install (or update) the index templates of llmq's two data streams",
      specs(kElasticSetupOptions), ElasticSetupConfig{}, known);
  ElasticReplayConfig replay_defaults;
  replay_defaults.spool_dir = default_spool_dir(env);
  Command<ElasticReplayConfig> elastic_replay(
      *elastic, {"elastic", "replay"}, "send the documents of a spool directory, then exit",
      specs(kElasticReplayOptions), std::move(replay_defaults), known);

  CLI::App* kibana = app.add_subcommand("kibana", "Kibana: the llmq dashboard");
  Command<KibanaSetupConfig> kibana_setup(
      *kibana, {"kibana", "setup"}, "import the data views and the dashboard (overwriting)",
      specs(kKibanaSetupOptions), KibanaSetupConfig{}, known);

  bool show_version = false;
  app.add_flag("--version", show_version,
               "print llmq's and llama.cpp's versions and the CPU features in use, then exit");
  CLI::App* version = app.add_subcommand("version", "the same as --version");

  app.allow_extras();
  elastic->allow_extras(false);
  kibana->allow_extras(false);
  std::string help = "llmq --help";
  try {
    app.parse(argc, argv);
    if ((show_version || version->parsed()) && app.remaining().empty()) return ShowVersion{};
    check_top_level(app);
    if (serve.selected()) {
      ServeConfig config = serve.resolve(env);
      check_namespace(config.elastic_namespace);
      check_pool_flags(config);
      return config;
    }
    for (Command<ServeConfig>* scale_out : {&gateway, &worker}) {
      if (!scale_out->selected()) continue;
      ServeConfig config = scale_out->resolve(env);
      check_namespace(config.elastic_namespace);
      check_pool_flags(config);
      check_nats_url(config.nats_url);
      return config;
    }
    if (elastic_setup.selected()) {
      ElasticSetupConfig config = elastic_setup.resolve(env);
      if (config.elastic_url.empty()) throw UsageError("--elastic-url is required");
      check_retention("requests-retention", config.requests_retention);
      check_retention("runtime-retention", config.runtime_retention);
      check_namespace(config.elastic_namespace);
      return config;
    }
    if (elastic_replay.selected()) {
      ElasticReplayConfig config = elastic_replay.resolve(env);
      if (config.elastic_url.empty()) throw UsageError("--elastic-url is required");
      return config;
    }
    if (kibana_setup.selected()) {
      KibanaSetupConfig config = kibana_setup.resolve(env);
      if (config.kibana_url.empty()) throw UsageError("--kibana-url is required");
      check_space(config.space);
      return config;
    }
    throw UsageError("no subcommand handled");  // unreachable while check_top_level is complete
  } catch (const CLI::Success& e) {  // --help
    app.exit(e, std::cout, std::cerr);
    return ExitNow{0};
  } catch (const CLI::ParseError& e) {
    if (serve.selected()) help = serve.help_hint();
    if (gateway.selected()) help = gateway.help_hint();
    if (worker.selected()) help = worker.help_hint();
    if (elastic_setup.selected()) help = elastic_setup.help_hint();
    if (elastic_replay.selected()) help = elastic_replay.help_hint();
    if (kibana_setup.selected()) help = kibana_setup.help_hint();
    return usage_error(std::string(e.what()) + " (see '" + help + "')");
  } catch (const UsageError& e) {
    return usage_error(e.what());
  }
}

std::string describe(const ServeConfig& config) {
  if (config.role != Role::serve) return describe_fields(config, specs(kScaleOutOptions));
  return describe_fields(config, specs(kServeOptions));
}
std::string describe(const ElasticSetupConfig& config) {
  return describe_fields(config, specs(kElasticSetupOptions));
}
std::string describe(const ElasticReplayConfig& config) {
  return describe_fields(config, specs(kElasticReplayOptions));
}
std::string describe(const KibanaSetupConfig& config) {
  return describe_fields(config, specs(kKibanaSetupOptions));
}

namespace {
// ${XDG_CACHE_HOME:-$HOME/.cache}/llmq; empty counts as unset, as in the set-up's ${VAR:-x}.
std::filesystem::path llmq_cache_dir(const EnvLookup& env) {
  std::filesystem::path cache = env("XDG_CACHE_HOME").value_or("");
  if (cache.empty()) cache = std::filesystem::path(env("HOME").value_or("")) / ".cache";
  return cache / "llmq";
}
}  // namespace

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> items;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    while (!item.empty() && space(item.front())) item.remove_prefix(1);
    while (!item.empty() && space(item.back())) item.remove_suffix(1);
    if (!item.empty()) items.emplace_back(item);
  }
  return items;
}

std::string model_name_of(const std::string& path) {
  return std::filesystem::path(path).stem().string();
}

std::vector<std::string> served_model_paths(const ServeConfig& config) {
  std::vector<std::string> paths = {config.model};
  for (std::string& path : split_list(config.models))
    if (std::ranges::find(paths, path) == paths.end()) paths.push_back(std::move(path));
  return paths;
}

std::string default_model_path(const EnvLookup& env) {
  std::filesystem::path dir = env("LLMQ_MODELS_DIR").value_or("");
  if (dir.empty()) dir = llmq_cache_dir(env) / "models";
  return (dir / kDefaultModelFile).string();
}

std::string default_spool_dir(const EnvLookup& env) {
  return (llmq_cache_dir(env) / "spool").string();
}

}  // namespace llmq
