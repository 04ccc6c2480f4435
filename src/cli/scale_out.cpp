#include "cli/scale_out.h"

#include <algorithm>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <random>
#include <thread>

#include "api/api_handler.h"
#include "api/probe_handler.h"
#include "cli/model_hosting.h"
#include "cli/service_parts.h"
#include "cli/shutdown.h"
#include "engine/llama_build_info.h"
#include "engine/llama_model_text.h"
#include "queue/jetstream_queue.h"
#include "queue/jetstream_worker.h"
#include "queue/worker_presence.h"
#include "telemetry/runtime_reporter.h"
#include "telemetry/service_metrics.h"
#include "telemetry/sink_metrics.h"

namespace llmq {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

nats::QueueSettings queue_settings(const ServeConfig& config) {
  return nats::QueueSettings{.max_jobs = config.queue_max,
                             .ack_wait = milliseconds(config.ack_wait_ms),
                             .max_deliver = config.max_attempts};
}

// The stream and the consumers, once the broker answers: up to `patience`, then give up.
bool ensure_queue(nats::Connection& nc, const ServeConfig& config,
                  const std::vector<std::string>& models, std::chrono::seconds patience) {
  const auto until = std::chrono::steady_clock::now() + patience;
  std::string last;
  while (std::chrono::steady_clock::now() < until) {
    try {
      nc.ensure_queue(queue_settings(config), models);
      spdlog::info("JetStream: stream {} (at most {} jobs, AckWait {} ms, {} deliveries) and {} "
                   "consumer(s) ready on {}",
                   kQueueName, config.queue_max, config.ack_wait_ms, config.max_attempts,
                   models.size(), config.nats_url);
      return true;
    } catch (const nats::Error& e) {
      if (e.what() != last) spdlog::warn("JetStream not ready yet: {}", e.what());
      last = e.what();
      std::this_thread::sleep_for(milliseconds(250));
    }
  }
  std::fprintf(stderr, "llmq: no JetStream at %s within %lld s: %s\n", config.nats_url.c_str(),
               static_cast<long long>(patience.count()), last.c_str());
  return false;
}

std::string random_id() {
  std::mt19937_64 rng{std::random_device{}()};
  char id[20];
  std::snprintf(id, sizeof id, "%012llx", static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return id;
}

// The gateway's JetStream gauges: per model, what waits, what runs, what ran again; per worker,
// its slots (from its heartbeats).
// The gateway's slots for the status: the live workers' heartbeats (no per-slot list).
SlotsStatus worker_slots(const std::vector<WorkerHeartbeat>& beats) {
  SlotsStatus out;
  out.workers.emplace();
  for (const WorkerHeartbeat& b : beats) {
    out.total += b.slots;
    out.busy += b.slots_busy;
    out.workers->push_back({b.worker, b.slots, b.slots_busy});
  }
  return out;
}

void watch_jetstream(telemetry::ServiceMetrics& metrics, const JetStreamQueue& queue,
                     const WorkerPresence& workers) {
  telemetry::Registry& r = metrics.registry();
  auto per_model = [&queue](std::int64_t ModelQueueState::*field) {
    return [&queue, field] {
      std::vector<std::pair<std::vector<std::string>, double>> out;
      for (const ModelQueueState& s : queue.model_states())
        out.push_back({{s.model}, static_cast<double>(s.*field)});
      return out;
    };
  };
  r.callback_family("llmq_jetstream_pending", "Jobs in LLM_INFERENCE no worker took yet, per model.", "gauge", {"model"}, per_model(&ModelQueueState::pending));
  r.callback_family("llmq_jetstream_ack_pending", "Jobs a worker took and has not finished, per model.", "gauge", {"model"}, per_model(&ModelQueueState::ack_pending));
  r.callback_family("llmq_jetstream_redelivered", "Jobs delivered again (a worker went silent or handed them back) and not finished, per model.", "gauge", {"model"}, per_model(&ModelQueueState::redelivered));
  auto per_worker = [&workers](bool busy) {
    return [&workers, busy] {
      std::vector<std::pair<std::vector<std::string>, double>> out;
      for (const WorkerHeartbeat& b : workers.live())
        out.push_back({{b.worker}, static_cast<double>(busy ? b.slots_busy : b.slots)});
      return out;
    };
  };
  r.callback_family("llmq_worker_slots_busy", "Slots holding a job, per live worker.", "gauge", {"worker"}, per_worker(true));
  r.callback_family("llmq_worker_slots", "Slots of the loaded models, per live worker.", "gauge", {"worker"}, per_worker(false));
  auto counter = [&queue](std::int64_t JetStreamCounters::*field) -> telemetry::CallbackFamily::Read {
    return [&queue, field] {
      return std::vector<std::pair<telemetry::Labels, double>>{
          {{}, static_cast<double>(queue.counters().*field)}};
    };
  };
  r.callback_family("llmq_jetstream_event_gaps_total", "Gaps found in a job's events from its worker (then sent again, or the job ended with event_gap).", "counter", {}, counter(&JetStreamCounters::event_gaps));
  r.callback_family("llmq_jetstream_reruns_total", "Jobs that ran again after they had started (their worker died or handed them back).", "counter", {}, counter(&JetStreamCounters::reruns));
  r.callback_family("llmq_jetstream_tokens_suppressed_total", "Token events of a rerun the client already had, not sent twice.", "counter", {}, counter(&JetStreamCounters::tokens_suppressed));
  r.callback_family("llmq_jetstream_reruns_diverged_total", "Reruns that sampled other text than the run before (ended with rerun_diverged).", "counter", {}, counter(&JetStreamCounters::diverged));
  r.callback_family("llmq_jetstream_jobs_lost_total", "Jobs ended with worker_lost or event_gap.", "counter", {}, counter(&JetStreamCounters::lost));
}

// Each live worker's newest heartbeat as a runtime snapshot, for the gateway's reporter to
// write. The _id is the worker's and its sampling time, so the gateways that all hear one
// heartbeat store it once; one already relayed is skipped.
class WorkerSnapshots {
 public:
  explicit WorkerSnapshots(const WorkerPresence& workers) : workers_(&workers) {}

  std::vector<telemetry::RelayedSnapshot> operator()() {
    std::vector<telemetry::RelayedSnapshot> out;
    for (const WorkerHeartbeat& b : workers_->live()) {
      if (!b.resources) continue;
      std::int64_t& last = relayed_at_ms_[b.worker];
      if (last == b.at_ms) continue;
      last = b.at_ms;
      telemetry::RelayedSnapshot r;
      r.snapshot.at = std::chrono::system_clock::time_point(milliseconds(b.at_ms));
      r.snapshot.worker = b.worker;
      r.snapshot.slots_busy = b.slots_busy;
      r.snapshot.slots_total = b.slots;
      r.snapshot.resources = *b.resources;
      r.host = b.host;
      r.id = "worker/" + b.worker + "/" + telemetry::iso8601_ms(r.snapshot.at);
      out.push_back(std::move(r));
    }
    return out;
  }

 private:
  const WorkerPresence* workers_;
  std::map<std::string, std::int64_t> relayed_at_ms_;  // a worker gone stays: a few bytes each
};

}  // namespace

int run_gateway(const ServeConfig& config) {
  configure_logging(config.log_level);
  const std::optional<std::vector<std::string>> checked = checked_model_names(config);
  if (!checked) return 1;
  const std::vector<std::string>& names = *checked;
  const std::vector<std::string> paths = served_model_paths(config);
  const telemetry::BuildInfo build = llama_build_info();
  spdlog::info("llmq {} ({}) gateway: no weights are loaded here, only vocabularies", build.version, build.commit);
  auto prepared = client_side(config);
  if (const int* exit_code = std::get_if<int>(&prepared)) return *exit_code;
  ClientSide& side = std::get<ClientSide>(prepared);
  const ApiKeys& api_keys = side.api_keys;
  const ClientIdentity& identity = side.identity;
  std::unique_ptr<telemetry::EventSink>& documents = side.documents;
  const telemetry::DocumentOrigin origin{config.service_name, host_name(), config.elastic_namespace};

  // Each model's vocabulary and chat template: what admission needs, in milliseconds.
  std::vector<std::unique_ptr<LlamaModelText>> texts;
  std::vector<ServedModel> served;
  try {
    for (const std::string& path : paths) {
      texts.push_back(std::make_unique<LlamaModelText>(path, /*vocab_only=*/true));
      served.push_back(ServedModel{texts.back().get(), config.ctx_size});
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llmq: %s\n", e.what());
    return 1;
  }

  const std::string gateway_id = host_name() + "-" + random_id();
  JetStreamQueue* queue_for_reconnect = nullptr;
  std::atomic<bool> reconnect_ready{false};
  nats::Connection nc(config.nats_url, "llmq-gateway " + gateway_id, [&] {
    if (reconnect_ready.load()) queue_for_reconnect->recover_events();
  });
  if (!ensure_queue(nc, config, names, std::chrono::seconds(30))) return 1;
  JetStreamQueue queue(nc, JetStreamQueueOptions{.gateway_id = gateway_id,
                                                 .settings = queue_settings(config),
                                                 .models = names});
  queue_for_reconnect = &queue;
  reconnect_ready = true;
  WorkerPresence workers(nc);
  const ModelCatalog catalog(
      std::move(served), [&workers](const std::string& name) { return workers.warm_anywhere(name); },
      side.aliases);

  ServiceState state(queue);
  telemetry::ServiceMetrics metrics(
      telemetry::ServiceMetricsOptions{.window = std::chrono::seconds(config.metrics_window_s), .build = build});
  metrics.watch_queue([&queue] { return static_cast<double>(queue.depth()); });
  auto total_slots = [&workers] {
    double n = 0;
    for (const WorkerHeartbeat& b : workers.live()) n += b.slots;
    return n;
  };
  auto busy_slots = [&workers] {
    double n = 0;
    for (const WorkerHeartbeat& b : workers.live()) n += b.slots_busy;
    return n;
  };
  metrics.watch_slots(busy_slots, total_slots);
  watch_jetstream(metrics, queue, workers);
  telemetry::RefusalDocuments refusal_documents;
  metrics.registry().add(telemetry::sink_collector(*documents, &refusal_documents));
  Admission admission(AdmissionOptions{
      .slots = config.slots,
      .client = ClientLimits{config.client_max_concurrent, config.client_rate, config.client_burst}});
  AuthThrottle auth_throttle;
  IdempotencyStore idempotency(IdempotencyOptions{.ttl = std::chrono::seconds(config.idempotency_ttl_s)});
  // A gateway runs no slots: it reports what the workers' heartbeats say, per worker.
  ServiceStatus status(StatusSources{.slots = [&workers] { return worker_slots(workers.live()); },
                                     .metrics = &metrics,
                                     .version = build.version,
                                     .window = std::chrono::seconds(config.metrics_window_s)});
  ApiHandler handler(state, ApiOptions{milliseconds(config.ping_interval_ms), config.timeout_ms,
                                       ParseLimits{.default_max_tokens = config.default_max_tokens,
                                                   .max_choices = std::min(kMaxChoices, config.slots)}, &metrics, documents.get(),
                                       origin, static_cast<std::size_t>(config.max_stream_buffer_bytes),
                                       &admission, &api_keys, &idempotency, &identity, &auth_throttle,
                                       &refusal_documents, side.cors, &status});
  asio::io_context io(config.http_threads);  // after everything a connection refers to
  http::ServerLimits limits = server_limits(config);
  limits.max_connections_per_client = static_cast<std::size_t>(config.client_max_connections);
  limits.client_of = [&identity](const std::string& address) {
    return identity.trusts(address) ? std::string() : address_group(address);
  };
  http::Server server(io, handler, limits, server_observer(metrics, *documents, refusal_documents, origin));
  metrics.watch_connections([&server] { return static_cast<double>(server.open_connections()); },
                            static_cast<double>(limits.max_connections));
  try {
    const auto endpoint = server.listen(config.host, static_cast<std::uint16_t>(config.port));
    spdlog::info("llmq gateway {} listening on http://{}:{}", gateway_id,
                 endpoint.address().to_string(), endpoint.port());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llmq: cannot listen on %s:%d: %s\n", config.host.c_str(), config.port, e.what());
    return 1;
  }
  spdlog::info("config: {}", describe(config));
  telemetry::RuntimeReporter reporter(
      *documents, metrics,
      telemetry::RuntimeSources{.queue_depth = [&queue] { return static_cast<double>(queue.depth()); },
                                .slots_busy = busy_slots,
                                .slots_total = total_slots,
                                .worker = {},
                                .relayed = WorkerSnapshots(workers)},
      origin, milliseconds(config.snapshot_interval_ms));
  state.models.store(&catalog);

  Shutdown shutdown(io, server, state,
                    DrainHooks{.describe = [&queue] { return std::to_string(queue.tracked()) + " jobs followed"; },
                               .idle = [&queue] { return queue.tracked() == 0; },
                               .finish_work = [&queue] { queue.abandon_all(); }},
                    milliseconds(config.drain_timeout_ms));
  shutdown.arm();
  run_io(io, config.http_threads);
  reporter.stop();
  close_documents(*documents, config.spool_dir);
  spdlog::info("llmq gateway stopped");
  return 0;
}

int run_worker(const ServeConfig& config) {
  configure_logging(config.log_level);
  const std::optional<std::vector<std::string>> checked = checked_model_names(config);
  if (!checked) return 1;
  const std::vector<std::string>& names = *checked;
  const telemetry::BuildInfo build = llama_build_info();
  if (!check_build_for_this_cpu(build)) return 1;
  std::optional<std::unique_ptr<StepTrace>> opened_trace = open_step_trace(config);
  if (!opened_trace) return 1;
  const std::unique_ptr<StepTrace> step_trace = std::move(*opened_trace);
  const std::string id = worker_id();

  std::map<std::string, std::unique_ptr<InProcessQueue>> inboxes;
  for (const std::string& name : names) inboxes[name] = std::make_unique<InProcessQueue>(1 << 20);
  auto inbox_of = [&inboxes](const std::string& name) -> InProcessQueue& { return *inboxes.at(name); };

  telemetry::ServiceMetrics metrics(
      telemetry::ServiceMetricsOptions{.window = std::chrono::seconds(config.metrics_window_s), .build = build});
  ModelPool pool(pool_options(config, inbox_of,
                              SchedulerOptions{.worker_id = id, .metrics = &metrics,
                                               .max_attempts = 1, .nice = config.worker_nice,
                                               .decode_stall_factor = config.decode_stall_factor,
                                               .prefill_slowdown = config.prefill_slowdown,
                                               .step_trace = step_trace.get()}));
  metrics.watch_slots([&pool] { return static_cast<double>(pool.busy_slots()); },
                      [&pool] { return static_cast<double>(pool.total_slots()); });
  metrics.watch_queue([&inboxes] {
    double n = 0;
    for (const auto& [name, q] : inboxes) n += static_cast<double>(q->depth());
    return n;
  });

  nats::Connection nc(config.nats_url, "llmq-worker " + id);
  if (!ensure_queue(nc, config, names, std::chrono::seconds(30))) return 1;
  JetStreamWorker jetstream(nc, JetStreamWorkerOptions{
                                    .worker_id = id,
                                    .settings = queue_settings(config),
                                    .models = names,
                                    .room = [&pool](const std::string& m) { return pool.room(m); },
                                    .inbox = inbox_of});
  metrics.registry().callback_family(
      "llmq_worker_redelivered_total", "Jobs this worker took that another worker had taken before.",
      "counter", {}, [&jetstream] {
        return std::vector<std::pair<telemetry::Labels, double>>{
            {{}, static_cast<double>(jetstream.redelivered())}};
      });

  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};
  ProbeHandler probes(
      [&] {
        if (draining.load()) return std::string("draining");
        if (!ready.load()) return std::string("loading");
        return nc.connected() ? std::string() : std::string("no_broker");
      },
      metrics.registry());
  asio::io_context io(1);
  http::Server server(io, probes, server_limits(config), http::ServerObserver{});
  try {
    const auto endpoint = server.listen(config.host, static_cast<std::uint16_t>(config.port));
    spdlog::info("llmq worker {} (probes and metrics on http://{}:{})", id, endpoint.address().to_string(),
                 endpoint.port());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llmq: cannot listen on %s:%d: %s\n", config.host.c_str(), config.port, e.what());
    return 1;
  }
  spdlog::info("config: {}", describe(config));

  int exit_code = 0;
  std::jthread loader([&] {
    pool.start();
    std::string error;
    if (!pool.wait_preloaded(error)) {
      spdlog::error("{}", error);
      exit_code = 1;
      asio::post(io, [&] { io.stop(); });
      return;
    }
    jetstream.start();
    ready = true;
  });
  // A heartbeat for the gateways, every 2 s: slots, models, and the CPU and memory this worker
  // used since the previous one (a gateway writes them to Elasticsearch).
  std::jthread heartbeat([&](std::stop_token stop) {
    telemetry::ResourceSampler resources;
    const std::string host = host_name();
    while (!stop.stop_requested()) {
      WorkerHeartbeat beat;
      beat.worker = id;
      beat.slots = pool.total_slots();
      beat.slots_busy = pool.busy_slots();
      for (const ModelStatus& m : pool.snapshot()) beat.models[m.name] = model_state_name(m.state);
      beat.resources = resources.sample();
      beat.at_ms = std::chrono::duration_cast<milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
      beat.host = host;
      nc.publish(nats::kWorkersSubject, encode_heartbeat(beat));
      for (int i = 0; i < 20 && !stop.stop_requested(); ++i) std::this_thread::sleep_for(milliseconds(100));
    }
  });

  // SIGTERM/SIGINT: take no more jobs; let those held finish for up to the drain timeout; hand
  // back the rest (another worker reruns them; their clients see `started` with the next
  // attempt). A second signal hands back at once.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer timer(io);
  std::chrono::steady_clock::time_point drain_deadline{};
  std::function<void()> poll = [&] {
    if (jetstream.held() == 0 || std::chrono::steady_clock::now() >= drain_deadline) {
      if (jetstream.held() > 0) spdlog::warn("drain timeout: {} jobs handed back", jetstream.held());
      io.stop();
      return;
    }
    timer.expires_after(milliseconds(50));
    timer.async_wait([&](const boost::system::error_code& ec) { if (!ec) poll(); });
  };
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        if (draining.exchange(true)) {
          spdlog::info("signal {} again: handing back now", signal);
          io.stop();
          return;
        }
        spdlog::info("signal {}: no more jobs taken; {} held finish within {} ms", signal,
                     jetstream.held(), config.drain_timeout_ms);
        jetstream.stop_fetching();
        drain_deadline = std::chrono::steady_clock::now() + milliseconds(config.drain_timeout_ms);
        signals.async_wait(on_signal);
        poll();
      };
  signals.async_wait(on_signal);
  io.run();
  jetstream.stop_fetching();
  jetstream.hand_back();
  loader.join();
  pool.stop();  // running jobs end with shutting_down: handed back by their sinks
  jetstream.hand_back();
  jetstream.flush_acks(std::chrono::steady_clock::now() + std::chrono::seconds(3));
  heartbeat = {};
  spdlog::info("llmq worker stopped");
  return exit_code;
}

}  // namespace llmq
