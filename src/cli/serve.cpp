#include "cli/serve.h"

#include <algorithm>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "api/api_handler.h"
#include "cli/model_hosting.h"
#include "cli/service_parts.h"
#include "cli/shutdown.h"
#include "engine/llama_build_info.h"
#include "engine/scheduler.h"
#include "http/server.h"
#include "queue/model_queues.h"
#include "telemetry/runtime_reporter.h"
#include "telemetry/service_metrics.h"
#include "telemetry/sink_metrics.h"

namespace llmq {

namespace asio = boost::asio;

int run_serve(const ServeConfig& config) {
  configure_logging(config.log_level);
  const std::optional<std::vector<std::string>> model_names = checked_model_names(config);
  if (!model_names) return 1;
  const telemetry::BuildInfo build = llama_build_info();
  if (!check_build_for_this_cpu(build)) return 1;
  std::optional<std::unique_ptr<StepTrace>> opened_trace = open_step_trace(config);
  if (!opened_trace) return 1;
  const std::unique_ptr<StepTrace> step_trace = std::move(*opened_trace);
  auto prepared = client_side(config);
  if (const int* exit_code = std::get_if<int>(&prepared)) return *exit_code;
  ClientSide& side = std::get<ClientSide>(prepared);
  const ApiKeys& api_keys = side.api_keys;
  const ClientIdentity& identity = side.identity;
  std::unique_ptr<telemetry::EventSink>& documents = side.documents;
  const telemetry::DocumentOrigin origin{config.service_name, host_name(), config.elastic_namespace};

  ModelQueues queue(*model_names, config.queue_max);
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
  SlotBoard slot_board;  // before the hosting, whose schedulers publish to it
  ServiceStatus status(StatusSources{
      .slots = [&slot_board] { return local_slots(slot_board.slots()); },
      .metrics = &metrics,
      .version = build.version,
      .window = std::chrono::seconds(config.metrics_window_s)});
  ApiHandler handler(state, ApiOptions{std::chrono::milliseconds(config.ping_interval_ms),
                                       config.timeout_ms, ParseLimits{.default_max_tokens = config.default_max_tokens,
                                                   .max_choices = std::min(kMaxChoices, config.slots)},
                                       &metrics, documents.get(), origin,
                                       static_cast<std::size_t>(config.max_stream_buffer_bytes),
                                       &admission, &api_keys, &idempotency, &identity,
                                       &auth_throttle, &refusal_documents, side.cors, &status});
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
  ModelHosting hosting(config, queue, state,
                         SchedulerOptions{.worker_id = worker_id(), .metrics = &metrics,
                                          .slot_board = &slot_board,
                                          .max_attempts = config.max_attempts,
                                          .nice = config.worker_nice,
                                          .decode_stall_factor = config.decode_stall_factor,
                                          .prefill_slowdown = config.prefill_slowdown,
                                          .step_trace = step_trace.get()});
  metrics.watch_slots([&hosting] { return hosting.busy_slots(); },
                      [&hosting] { return hosting.total_slots(); });
  telemetry::RuntimeReporter reporter(
      *documents, metrics,
      telemetry::RuntimeSources{.queue_depth = [&queue] { return static_cast<double>(queue.depth()); },
                                .slots_busy = [&hosting] { return hosting.busy_slots(); },
                                .slots_total = [&hosting] { return hosting.total_slots(); },
                                .worker = worker_id(),  // the one its request documents name
                                .relayed = {}},
      origin, std::chrono::milliseconds(config.snapshot_interval_ms));
  hosting.load([&] {
    exit_code = 1;
    asio::post(io, [&] { io.stop(); });
  });

  Shutdown shutdown(io, server, state,
                    DrainHooks{.describe = [&] {
                                 return std::to_string(queue.depth()) + " waiting, " +
                                        std::to_string(static_cast<int>(hosting.busy_slots())) + " running";
                               },
                               .idle = [&] { return queue.depth() == 0 && hosting.busy_slots() == 0; },
                               .finish_work = [&] {
                                 // Snapshots end with the work: one taken after the models are
                                 // unloaded would report a service of no slots.
                                 reporter.stop();
                                 queue.close();
                                 hosting.stop();
                                 // Jobs that never reached a slot still owe their clients a last event.
                                 for (const JobPtr& job : queue.drain())
                                   job->emit(ErrorEvent{"shutting_down", "the server is shutting down"});
                               }},
                    std::chrono::milliseconds(config.drain_timeout_ms));
  shutdown.arm();

  run_io(io, config.http_threads);
  hosting.stop();
  reporter.stop();
  close_documents(*documents, config.spool_dir);
  spdlog::info("llmq stopped");
  return exit_code;
}

}  // namespace llmq
