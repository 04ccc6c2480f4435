#include "cli/service_parts.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <thread>

#include "cli/stack_commands.h"
#include "telemetry/elastic_sink.h"
#include "telemetry/spool_sink.h"
#include "util/fatal_signal.h"
#include "util/fd_limit.h"

namespace llmq {
namespace {

const char* server_refusal_reason(int status) {
  if (status == 413) return "too_large";
  if (status == 431) return "headers_too_large";
  return "invalid";
}

// Refusals the HTTP server answers itself, before any route: counted like the handler's, with
// a document of their own (no route: the server refused before reading one).
void record_server_refusal(telemetry::ServiceMetrics& metrics, telemetry::EventSink& documents,
                           telemetry::RefusalDocuments& refusals,
                           const telemetry::DocumentOrigin& origin, int status) {
  metrics.count_response("other", status);
  metrics.count_rejection(server_refusal_reason(status));
  const auto omitted = refusals.admit(server_refusal_reason(status));
  if (!omitted) return;
  telemetry::RequestRecord record;
  record.refusals_omitted = *omitted;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  char id[24];
  std::snprintf(id, sizeof id, "req_%016llx", static_cast<unsigned long long>(rng()));
  record.request_id = id;
  record.at = std::chrono::system_clock::now();
  record.status = status;
  record.rejection_reason = server_refusal_reason(status);
  try {
    documents.submit(telemetry::requests_stream(origin), record.request_id,
                     telemetry::request_document(record, origin));
  } catch (const std::exception& e) {  // never let the document break the server's refusal
    spdlog::error("request {}: document not kept: {}", record.request_id, e.what());
  }
}

}  // namespace

// A missing or foreign model file is refused before anything listens, with one line.
bool check_model_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "llmq: cannot read model file %s (run scripts/setup.sh, or pass --model/--models)\n",
                 path.c_str());
    return false;
  }
  char magic[4] = {};
  in.read(magic, sizeof magic);
  if (!in || std::string_view(magic, 4) != "GGUF") {
    std::fprintf(stderr, "llmq: %s is not a GGUF model file\n", path.c_str());
    return false;
  }
  return true;
}

std::vector<std::string> served_model_names(const ServeConfig& config) {
  std::vector<std::string> names;
  for (const std::string& path : served_model_paths(config)) names.push_back(model_name_of(path));
  return names;
}

std::optional<std::vector<std::string>> checked_model_names(const ServeConfig& config) {
  std::vector<std::string> names;
  for (const std::string& path : served_model_paths(config)) {
    if (!check_model_file(path)) return std::nullopt;
    names.push_back(model_name_of(path));
  }
  return names;
}

std::variant<ClientSide, int> client_side(const ServeConfig& config) {
  ClientSide side;
  try {
    side.api_keys = ApiKeys::load(config.api_key, config.api_key_file);
    side.identity = ClientIdentity(config.trusted_proxies);
    side.cors = CorsPolicy::parse(config.cors_origins, config.cors_credentials,
                                  config.cors_max_age_s);
    side.aliases = parse_model_aliases(config.model_alias, served_model_names(config));
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "llmq: %s\n", e.what());
    return 2;
  }
  try {
    side.documents = make_document_sink(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llmq: cannot use spool directory %s: %s\n", config.spool_dir.c_str(),
                 e.what());
    return 1;
  }
  return side;
}

void run_io(boost::asio::io_context& io, int threads) {
  std::vector<std::jthread> extra;
  for (int i = 1; i < threads; ++i) extra.emplace_back([&io] { io.run(); });
  io.run();
  io.stop();
}

void close_documents(telemetry::EventSink& documents, const std::string& spool_dir) {
  if (!documents.flush(std::chrono::steady_clock::now() + std::chrono::seconds(5)))
    spdlog::warn("documents not yet acknowledged were kept in {}", spool_dir);
  documents.close();
}

std::string host_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

std::string worker_id() { return host_name() + "/" + std::to_string(getpid()); }

// Where the documents go: Elasticsearch when a URL is set, else only the spool, kept for a later
// run with a URL to replay. Throws when the spool directory cannot be used.
std::unique_ptr<telemetry::EventSink> make_document_sink(const ServeConfig& config) {
  if (config.elastic_url.empty())
    return std::make_unique<telemetry::SpoolSink>(telemetry::SpoolOptions{.dir = config.spool_dir});
  telemetry::ElasticSinkOptions options =
      elastic_sink_options(config, config.spool_dir, config.elastic_setup, config.elastic_namespace);
  options.nice = config.worker_nice;
  return std::make_unique<telemetry::ElasticSink>(std::move(options));
}

// The server's limits; the open-file limit is raised first so that max_connections can be
// honoured, or is clamped (with a warning) to what that limit allows.
std::optional<std::unique_ptr<StepTrace>> open_step_trace(const ServeConfig& config) {
  if (config.step_trace.empty()) return std::unique_ptr<StepTrace>();
  try {
    return std::make_unique<StepTrace>(config.step_trace);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llmq: %s\n", e.what());
    return std::nullopt;
  }
}

http::ServerLimits server_limits(const ServeConfig& config) {
  const FdLimit fds = raise_fd_limit();
  std::size_t max_connections = static_cast<std::size_t>(config.max_connections);
  const std::size_t fit = http::connections_within(fds.now);
  if (max_connections > fit) {
    spdlog::warn("--max-connections {} does not fit the open-file limit {} (hard limit {}); "
                 "serving at most {} connections",
                 max_connections, fds.now, fds.hard, fit);
    max_connections = fit;
  }
  spdlog::info("open-file limit {} (was {}, hard {}); at most {} connections", fds.now,
               fds.before, fds.hard, max_connections);
  using std::chrono::milliseconds;
  return http::ServerLimits{
      .max_body_bytes = static_cast<std::uint64_t>(config.max_body_bytes),
      .max_header_bytes = static_cast<std::uint32_t>(config.max_header_bytes),
      .header_timeout = milliseconds(config.header_timeout_ms),
      .body_timeout = milliseconds(config.body_timeout_ms),
      .idle_timeout = milliseconds(config.idle_timeout_ms),
      .send_timeout = milliseconds(config.send_timeout_ms),
      .max_connections = max_connections,
  };
}

// What the server reports about connections, into the metrics.
http::ServerObserver server_observer(telemetry::ServiceMetrics& metrics,
                                     telemetry::EventSink& documents,
                                     telemetry::RefusalDocuments& refusals,
                                     const telemetry::DocumentOrigin& origin) {
  return http::ServerObserver{
      .on_refusal = [&metrics, &documents, &refusals, origin](int status) {
        record_server_refusal(metrics, documents, refusals, origin, status);
      },
      // No request was read, so no request document: only the counts.
      .on_connection_refused = [&metrics] {
        metrics.count_response("other", 503);
        metrics.count_rejection("too_many_connections");
      },
      .on_client_refused = [&metrics] {
        metrics.count_response("other", 429);
        metrics.count_rejection("client_connections");
      },
      .on_close = [&metrics](http::CloseReason reason) {
        metrics.count_connection_closed(http::close_reason_name(reason));
      },
  };
}

void configure_logging(const std::string& level) {
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
}

// Logs what runs (llama.cpp, the CPU features its build uses, this CPU) and refuses to start
// when the build needs an instruction set this CPU lacks: a llama.cpp built on another machine
// would otherwise die of SIGILL on the first request. False when refused.
bool check_build_for_this_cpu(const telemetry::BuildInfo& build) {
  spdlog::info("llmq {} ({}); llama.cpp {}; ggml {}", build.version, build.commit, build.llama_cpp,
               build.ggml);
  spdlog::info("CPU: {}; llama.cpp CPU features in use: {}; AMX kernels {}",
               build.cpu_model.empty() ? "unknown" : build.cpu_model, build.cpu_features,
               build.amx ? "on" : "off");
  spdlog::debug("llama.cpp system info: {}", build.system_info);
  const std::string flags = telemetry::cpuinfo_field(telemetry::read_cpuinfo(), "flags");
  const std::string missing = flags.empty() ? "" : telemetry::missing_cpu_features(build.cpu_features, flags);
  if (!missing.empty()) {
    std::fprintf(stderr,
                 "llmq: this llama.cpp build uses %s, which this CPU (%s) does not have; rebuild "
                 "llama.cpp on this machine (scripts/setup.sh) or for a baseline every x86-64 "
                 "server runs (LLMQ_LLAMA_CPU=x86-64-v3 scripts/setup.sh)\n",
                 missing.c_str(), build.cpu_model.c_str());
    return false;
  }
  install_fatal_signal_report("llama.cpp " + build.llama_cpp + ", CPU features in use: " +
                              build.cpu_features + (build.amx ? " (AMX on)" : "") +
                              "; CPU: " + build.cpu_model);
  return true;
}

}  // namespace llmq
