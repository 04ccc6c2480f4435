// The command line of `llmq`: the option tables of each subcommand and their dispatch. The
// machinery that turns a table into flags, environment variables and file keys is command.h.
#include "cli/config.h"

#include <iostream>

#include "cli/command.h"
#include "util/keep_alive.h"
#include "util/url.h"

namespace llmq {
namespace cli {
namespace {

constexpr int kExitUsage = 2;

// Secrets are never shown, not even in part.
std::string mask_secret(std::string_view) { return "***"; }

constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * kKiB;
constexpr std::int64_t kGiB = 1024 * kMiB;
constexpr std::array<std::string_view, 5> kLogLevels = {"trace", "debug", "info", "warn",
                                                        "error"};

// The connection flags every command that talks to Elasticsearch takes.
template <class Config>
constexpr std::array<OptionSpec<Config>, 5> elastic_access_options(std::string_view url_help) {
  return {{
      {.name = "elastic-url", .help = url_help, .field = &ElasticAccess::elastic_url,
       .mask = mask_url_credentials},
      {.name = "elastic-api-key", .help = "Elasticsearch API key (the encoded id:key)",
       .field = &ElasticAccess::elastic_api_key, .mask = mask_secret},
      {.name = "elastic-user", .help = "Elasticsearch basic-auth user (when no API key)",
       .field = &ElasticAccess::elastic_user},
      {.name = "elastic-password", .help = "Elasticsearch basic-auth password",
       .field = &ElasticAccess::elastic_password, .mask = mask_secret},
      {.name = "elastic-ca-file", .help = "PEM bundle to verify Elasticsearch with",
       .field = &ElasticAccess::elastic_ca_file},
  }};
}

using Serve = ServeConfig;
constexpr auto kServeOptions = join(
    std::to_array<OptionSpec<Serve>>({
        {.name = "model", .help = "GGUF model file (the default model)", .field = &Serve::model},
        {.name = "models",
         .help = "more GGUF model files served beside --model, comma-separated (clients name them by file stem)",
         .field = &Serve::models},
        {.name = "max-loaded", .help = "most models in memory at once (the warm pool)",
         .field = &Serve::max_loaded, .min = 1, .max = 64},
        {.name = "keep-alive",
         .help = "how long an idle model stays loaded: 5m, 30s, 0 (unload when idle), -1 (forever); a request's keep_alive overrides it",
         .field = &Serve::keep_alive},
        {.name = "preload",
         .help = "models (file stems) loaded before /readyz turns ready, comma-separated (empty: --model's)",
         .field = &Serve::preload},
        {.name = "pin", .help = "models (file stems) never unloaded once loaded, comma-separated",
         .field = &Serve::pin},
        {.name = "host", .help = "listen address", .field = &Serve::host},
        {.name = "port", .help = "listen port (0: any free port)", .field = &Serve::port,
         .max = 65535},
        {.name = "slots", .help = "sequences decoded concurrently", .field = &Serve::slots,
         .min = 1, .max = 256},
        {.name = "threads", .help = "CPU threads for decoding (0: all cores)",
         .field = &Serve::threads, .max = 1024},
        {.name = "ctx-size", .help = "tokens per slot (prompt + completion)",
         .field = &Serve::ctx_size, .min = 16, .max = 1048576},
        {.name = "batch-size", .help = "most tokens in one decode step",
         .field = &Serve::batch_size, .min = 1, .max = 65536},
        {.name = "queue-max", .help = "waiting jobs before 429 queue_full",
         .field = &Serve::queue_max, .max = 1000000},
        {.name = "ping-interval-ms", .help = "SSE ping period while waiting or idle",
         .field = &Serve::ping_interval_ms, .min = 10, .max = 3600000},
    }),
    join(elastic_access_options<Serve>("Elasticsearch base URL (empty: documents stay in the spool)"),
         std::to_array<OptionSpec<Serve>>({
             {.name = "elastic-setup",
              .help = "install the index templates (as `llmq elastic setup`) before shipping",
              .field = &Serve::elastic_setup},
             {.name = "elastic-namespace",
              .help = "namespace of the data streams (logs-llmq.requests-<namespace>, ...)",
              .field = &Serve::elastic_namespace},
             {.name = "spool-dir",
              .help = "where documents wait for Elasticsearch (or a later replay)",
              .field = &Serve::spool_dir},
             {.name = "snapshot-interval-ms", .help = "period of the runtime snapshot documents",
              .field = &Serve::snapshot_interval_ms, .min = 100, .max = 3600000},
             {.name = "metrics-window", .help = "seconds of llmq_request_duration_window_seconds",
              .field = &Serve::metrics_window_s, .min = 6, .max = 86400},
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
             {.name = "send-timeout-ms",
              .help = "a write the client has not taken within this cuts the connection",
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
             {.name = "drain-timeout-ms",
              .help = "on SIGTERM/SIGINT, how long queued and running jobs may still finish",
              .field = &Serve::drain_timeout_ms, .max = 86400000},
             {.name = "max-attempts",
              .help = "runs of a job whose decode fails before it sent output (then dead-lettered)",
              .field = &Serve::max_attempts, .min = 1, .max = 10},
             {.name = "worker-nice",
              .help = "niceness of the decode threads, so HTTP answers (refusals, pings) never wait for a core",
              .field = &Serve::worker_nice, .max = 19},
             {.name = "decode-stall-factor",
              .help = "while streams generate, a step that also prefills a prompt may take this many times a plain step (0: no limit)",
              .field = &Serve::decode_stall_factor, .max = 1000},
             {.name = "idempotency-ttl-s",
              .help = "how long the result of a request with an Idempotency-Key is kept",
              .field = &Serve::idempotency_ttl_s, .min = 1, .max = 604800},
             {.name = "http-threads", .help = "threads running the HTTP I/O loop",
              .field = &Serve::http_threads, .min = 1, .max = 64},
             {.name = "log-level", .help = "trace, debug, info, warn or error",
              .field = &Serve::log_level, .choices = kLogLevels},
             {.name = "api-key", .help = "API key(s) required on the inference routes, comma-separated (empty: none)",
              .field = &Serve::api_key, .mask = mask_secret},
             {.name = "api-key-file",
              .help = "file of API keys, one per line: KEY [name=N] [max_concurrent=N] [rate=R] [burst=B]",
              .field = &Serve::api_key_file},
             {.name = "client-max-concurrent",
              .help = "requests one client (API key, else address) may have queued or running (0: no limit)",
              .field = &Serve::client_max_concurrent, .max = 1000000},
             {.name = "client-rate", .help = "requests per second one client may sustain (0: no limit)",
              .field = &Serve::client_rate, .max = 1000000},
             {.name = "client-burst", .help = "requests one client may send at once above its rate (0: the rate)",
              .field = &Serve::client_burst, .max = 1000000},
             {.name = "client-max-connections",
              .help = "connections one client address (an IPv6 /64) may hold; trusted proxies are exempt (0: no limit)",
              .field = &Serve::client_max_connections, .max = 1000000},
             {.name = "trusted-proxies",
              .help = "comma-separated proxy addresses whose X-Forwarded-For names the client (empty: none)",
              .field = &Serve::trusted_proxies},
         })));
static_assert(ranges_fit_fields(kServeOptions), "an option's range does not fit its field");

// gateway and worker: serve's flags and the NATS ones.
constexpr auto kScaleOutOptions = join(
    std::to_array<OptionSpec<Serve>>({
        {.name = "nats-url", .help = "NATS server with JetStream, where the queue LLM_INFERENCE lives",
         .field = &Serve::nats_url, .mask = mask_url_credentials},
        {.name = "ack-wait-ms",
         .help = "a worker silent this long (dead) loses its jobs to another worker; workers heartbeat every third of it",
         .field = &Serve::ack_wait_ms, .min = 500, .max = 3600000},
    }),
    kServeOptions);
static_assert(ranges_fit_fields(kScaleOutOptions), "an option's range does not fit its field");

using Setup = ElasticSetupConfig;
constexpr auto kElasticSetupOptions = join(
    elastic_access_options<Setup>("Elasticsearch base URL"),
    std::to_array<OptionSpec<Setup>>({
        {.name = "requests-retention",
         .help = "how long request documents are kept (e.g. 30d, 12h; empty: forever)",
         .field = &Setup::requests_retention},
        {.name = "runtime-retention",
         .help = "how long runtime snapshots are kept (e.g. 7d; empty: forever)",
         .field = &Setup::runtime_retention},
    }));

using Replay = ElasticReplayConfig;
constexpr auto kElasticReplayOptions = join(
    elastic_access_options<Replay>("Elasticsearch base URL"),
    std::to_array<OptionSpec<Replay>>({
        {.name = "spool-dir", .help = "the spool to send (serve's --spool-dir)",
         .field = &Replay::spool_dir},
        {.name = "timeout-ms", .help = "give up after this long; what is left stays spooled",
         .field = &Replay::timeout_ms, .min = 1, .max = 86400000},
        {.name = "elastic-setup", .help = "install the index templates first",
         .field = &Replay::elastic_setup},
    }));
static_assert(ranges_fit_fields(kElasticReplayOptions), "an option's range does not fit its field");

using Kibana = KibanaSetupConfig;
constexpr auto kKibanaSetupOptions = std::to_array<OptionSpec<Kibana>>({
    {.name = "kibana-url", .help = "Kibana base URL", .field = &Kibana::kibana_url,
     .mask = mask_url_credentials},
    {.name = "kibana-api-key", .help = "Kibana (Elasticsearch) API key, the encoded id:key",
     .field = &Kibana::kibana_api_key, .mask = mask_secret},
    {.name = "kibana-user", .help = "basic-auth user (when no API key)",
     .field = &Kibana::kibana_user},
    {.name = "kibana-password", .help = "basic-auth password", .field = &Kibana::kibana_password,
     .mask = mask_secret},
    {.name = "kibana-ca-file", .help = "PEM bundle to verify Kibana with",
     .field = &Kibana::kibana_ca_file},
    {.name = "space", .help = "Kibana space to import into (empty: the default space)",
     .field = &Kibana::space},
});

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
