#include "cli/serve.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "api/api_handler.h"
#include "engine/llama_build_info.h"
#include "engine/llama_engine.h"
#include "engine/scheduler.h"
#include "http/server.h"
#include "queue/in_process_queue.h"
#include "cli/stack_commands.h"
#include "telemetry/elastic_sink.h"
#include "telemetry/request_document.h"
#include "telemetry/runtime_reporter.h"
#include "telemetry/service_metrics.h"
#include "telemetry/sink_metrics.h"
#include "telemetry/spool_sink.h"
#include "util/fatal_signal.h"
#include "util/fd_limit.h"

namespace llmq {
namespace {

namespace asio = boost::asio;

// A missing or foreign model file is refused before anything listens, with one line.
bool check_model_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "llmq: cannot read model file %s (run scripts/setup.sh, or pass --model)\n",
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
      elastic_sink_options(config, config.spool_dir, config.elastic_setup);
  options.nice = config.worker_nice;
  return std::make_unique<telemetry::ElasticSink>(std::move(options));
}

// The model and its worker, loaded off the I/O threads so /healthz and /readyz answer meanwhile.
class Inference {
 public:
  Inference(const ServeConfig& config, ServiceState& state, JobConsumer& jobs,
            telemetry::ServiceMetrics& metrics)
      : config_(config), state_(state), jobs_(jobs), metrics_(metrics) {}

  // Loads in the background; on failure calls `on_failure` (from the loader thread).
  void load(std::function<void()> on_failure) {
    loader_ = std::jthread([this, on_failure = std::move(on_failure)] {
      try {
        engine_ = std::make_unique<LlamaEngine>(LlamaEngineOptions{
            config_.model, config_.slots, config_.ctx_size, config_.batch_size, config_.threads});
        const ModelInfo& m = engine_->info();
        spdlog::info("model loaded: name={} desc=\"{}\" params={} ctx_train={} vocab={} chat_template={}",
                     m.name, m.description, m.n_params, m.n_ctx_train, m.n_vocab,
                     m.has_chat_template ? "yes" : "no");
        // Not ready until this CPU has run every kernel a request will: a fault ends the
        // process here, named by the fatal-signal report, before anyone was admitted.
        set_fatal_signal_phase("the warm-up decode (before ready)");
        const WarmUpReport warm = engine_->warm_up();
        set_fatal_signal_phase("serving");
        spdlog::info("warm-up: {} tokens in {} decodes over {} slots, {:.0f} ms", warm.tokens,
                     warm.decodes, config_.slots, warm.ms);
        scheduler_ = std::make_unique<Scheduler>(*engine_, jobs_,
                                                 SchedulerOptions{.worker_id = worker_id(), .metrics = &metrics_,
                                                                  .max_attempts = config_.max_attempts,
                                                                  .nice = config_.worker_nice,
                                                                  .decode_stall_factor = config_.decode_stall_factor});
        scheduler_->start();
        running_.store(scheduler_.get());
        catalog_ = std::make_unique<ModelCatalog>(
            std::vector<ServedModel>{{engine_.get(), engine_->ctx_per_slot()}});
        state_.models.store(catalog_.get());
      } catch (const std::exception& e) {
        spdlog::error("{}", e.what());
        on_failure();
      }
    });
  }

  // For the slot gauges, from any thread: 0 until the worker runs.
  double busy_slots() const {
    const Scheduler* s = running_.load();
    return s ? s->busy_slots() : 0;
  }
  double total_slots() const {
    const Scheduler* s = running_.load();
    return s ? s->total_slots() : 0;
  }

  // Stops the worker: jobs still running end with error "shutting_down".
  void stop() {
    if (loader_.joinable()) loader_.join();
    if (scheduler_) scheduler_->stop();
  }

 private:
  const ServeConfig& config_;
  ServiceState& state_;
  JobConsumer& jobs_;  // where the scheduler takes its jobs
  telemetry::ServiceMetrics& metrics_;
  std::unique_ptr<LlamaEngine> engine_;   // set by the loader thread
  std::unique_ptr<Scheduler> scheduler_;  // set by the loader thread
  std::unique_ptr<ModelCatalog> catalog_; // set by the loader thread: what the routes serve
  std::atomic<const Scheduler*> running_{nullptr};  // scheduler_ once started, for other threads
  std::jthread loader_;
};

// Shutdown, on SIGTERM/SIGINT: /readyz turns 503 and new requests get 503 shutting_down at
// once; queued and running jobs go on for up to the drain timeout; then what remains ends with
// error shutting_down, the worker stops, and the connections get a moment to write their last
// events before the I/O loop stops. A second signal cuts the drain short. All of it runs on
// the I/O context; `stopping_` guards against two handlers finishing at once (--http-threads).
class Shutdown {
 public:
  Shutdown(asio::io_context& io, http::Server& server, InProcessQueue& queue, ServiceState& state,
           Inference& inference, std::chrono::milliseconds drain_timeout)
      : io_(io), server_(server), queue_(queue), state_(state), inference_(inference),
        drain_timeout_(drain_timeout), signals_(io, SIGINT, SIGTERM), drain_timer_(io),
        flush_timer_(io) {}

  void arm() {
    signals_.async_wait([this](const boost::system::error_code& ec, int signal) { on_signal(ec, signal); });
  }

 private:
  void on_signal(const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (state_.draining.exchange(true)) {
      spdlog::info("signal {} again: stopping now", signal);
      finish();
      return;
    }
    spdlog::info("signal {}: draining for up to {} ms ({} waiting, {} running)", signal,
                 drain_timeout_.count(), queue_.depth(), inference_.busy_slots());
    drain_deadline_ = std::chrono::steady_clock::now() + drain_timeout_;
    arm();
    poll_drain();
  }

  void poll_drain() {
    const bool idle = queue_.depth() == 0 && inference_.busy_slots() == 0;
    if (idle || std::chrono::steady_clock::now() >= drain_deadline_) {
      if (!idle)
        spdlog::warn("drain timeout: {} waiting and {} running jobs end with shutting_down",
                     queue_.depth(), inference_.busy_slots());
      finish();
      return;
    }
    drain_timer_.expires_after(std::chrono::milliseconds(50));
    drain_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) poll_drain();
    });
  }

  void finish() {
    if (stopping_.exchange(true)) return;
    drain_timer_.cancel();
    server_.stop();
    queue_.close();
    inference_.stop();
    // Jobs that never reached a slot still owe their clients a last event.
    while (std::optional<JobPtr> job = queue_.pop(std::chrono::milliseconds(0))) {
      (*job)->emit(ErrorEvent{"shutting_down", "the server is shutting down"});
    }
    // The last events get a moment to be written; then every connection is shut, so that each
    // request's handler ends (and writes its document) rather than wait on its client, and the
    // loop stops once none is left, or after kCloseWait whatever remains.
    flush_timer_.expires_after(std::chrono::milliseconds(300));
    flush_timer_.async_wait([this](const boost::system::error_code&) {
      signals_.cancel();
      server_.close_connections();
      close_deadline_ = std::chrono::steady_clock::now() + kCloseWait;
      poll_closed();
    });
  }

  void poll_closed() {
    if (server_.open_connections() == 0 || std::chrono::steady_clock::now() >= close_deadline_) {
      io_.stop();
      return;
    }
    flush_timer_.expires_after(std::chrono::milliseconds(10));
    flush_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) poll_closed();
    });
  }

  static constexpr std::chrono::seconds kCloseWait{2};

  asio::io_context& io_;
  http::Server& server_;
  InProcessQueue& queue_;
  ServiceState& state_;
  Inference& inference_;
  const std::chrono::milliseconds drain_timeout_;
  asio::signal_set signals_;
  asio::steady_timer drain_timer_;  // polls for an idle worker while draining
  asio::steady_timer flush_timer_;  // the last events' moment, then the connections' closing
  std::chrono::steady_clock::time_point drain_deadline_{};
  std::chrono::steady_clock::time_point close_deadline_{};  // of the connections' last moment
  std::atomic<bool> stopping_{false};
};

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

// The server's limits; the open-file limit is raised first so that max_connections can be
// honoured, or is clamped (with a warning) to what that limit allows.
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

}  // namespace

int run_serve(const ServeConfig& config) {
  configure_logging(config.log_level);
  if (!check_model_file(config.model)) return 1;
  const telemetry::BuildInfo build = llama_build_info();
  if (!check_build_for_this_cpu(build)) return 1;
  ApiKeys api_keys;
  ClientIdentity identity;
  try {
    api_keys = ApiKeys::load(config.api_key, config.api_key_file);
    identity = ClientIdentity(config.trusted_proxies);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "llmq: %s\n", e.what());
    return 2;
  }

  std::unique_ptr<telemetry::EventSink> documents;
  try {
    documents = make_document_sink(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llmq: cannot use spool directory %s: %s\n", config.spool_dir.c_str(),
                 e.what());
    return 1;
  }
  const telemetry::DocumentOrigin origin{config.service_name, host_name(), config.elastic_namespace};

  InProcessQueue queue(config.queue_max);
  ServiceState state(queue);
  telemetry::ServiceMetrics metrics(
      telemetry::ServiceMetricsOptions{.window = std::chrono::seconds(config.metrics_window_s),
                                       .build = build});
  metrics.watch_queue([&queue] { return static_cast<double>(queue.depth()); });
  telemetry::RefusalDocuments refusal_documents;
  metrics.registry().add(telemetry::sink_collector(*documents, &refusal_documents));
  Admission admission(AdmissionOptions{
      .slots = config.slots,
      .client = ClientLimits{config.client_max_concurrent, config.client_rate, config.client_burst}});
  AuthThrottle auth_throttle;
  IdempotencyStore idempotency(
      IdempotencyOptions{.ttl = std::chrono::seconds(config.idempotency_ttl_s)});
  ApiHandler handler(state, ApiOptions{std::chrono::milliseconds(config.ping_interval_ms),
                                       config.timeout_ms, ParseLimits{config.default_max_tokens},
                                       &metrics, documents.get(), origin,
                                       static_cast<std::size_t>(config.max_stream_buffer_bytes),
                                       &admission, &api_keys, &idempotency, &identity,
                                       &auth_throttle, &refusal_documents});
  // Declared after everything a connection's coroutine refers to (the handler, admission, the
  // idempotency store, the metrics, the documents): coroutines still suspended when the loop
  // stops are destroyed with the io_context, and that must happen while those still exist.
  asio::io_context io(config.http_threads);
  http::ServerLimits limits = server_limits(config);
  limits.max_connections_per_client = static_cast<std::size_t>(config.client_max_connections);
  limits.client_of = [&identity](const std::string& address) {
    return identity.trusts(address) ? std::string() : address_group(address);
  };
  http::Server server(io, handler, limits,
                      server_observer(metrics, *documents, refusal_documents, origin));
  metrics.watch_connections([&server] { return static_cast<double>(server.open_connections()); },
                            static_cast<double>(limits.max_connections));
  try {
    const auto endpoint = server.listen(config.host, static_cast<std::uint16_t>(config.port));
    spdlog::info("llmq listening on http://{}:{}", endpoint.address().to_string(), endpoint.port());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llmq: cannot listen on %s:%d: %s\n", config.host.c_str(), config.port,
                 e.what());
    return 1;
  }
  spdlog::info("config: {}", describe(config));
  if (api_keys.enabled())
    spdlog::info("API keys required on /api/v1/req: {} key(s)", api_keys.size());

  int exit_code = 0;
  Inference inference(config, state, queue, metrics);
  metrics.watch_slots([&inference] { return inference.busy_slots(); },
                      [&inference] { return inference.total_slots(); });
  telemetry::RuntimeReporter reporter(
      *documents, metrics,
      telemetry::RuntimeSources{[&queue] { return static_cast<double>(queue.depth()); },
                                [&inference] { return inference.busy_slots(); },
                                [&inference] { return inference.total_slots(); }},
      origin, std::chrono::milliseconds(config.snapshot_interval_ms));
  inference.load([&] {
    exit_code = 1;
    asio::post(io, [&] { io.stop(); });
  });

  Shutdown shutdown(io, server, queue, state, inference,
                    std::chrono::milliseconds(config.drain_timeout_ms));
  shutdown.arm();

  std::vector<std::jthread> extra_threads;
  for (int i = 1; i < config.http_threads; ++i) extra_threads.emplace_back([&] { io.run(); });
  io.run();
  io.stop();
  extra_threads.clear();
  inference.stop();
  reporter.stop();
  // Every request has its document by now; give Elasticsearch a moment, then spool the rest.
  if (!documents->flush(std::chrono::steady_clock::now() + std::chrono::seconds(5)))
    spdlog::warn("documents not yet acknowledged were kept in {}", config.spool_dir);
  documents->close();
  spdlog::info("llmq stopped");
  return exit_code;
}

}  // namespace llmq
