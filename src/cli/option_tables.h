// The option tables of every `llmq` subcommand: each flag once, with its help, range, choices
// and masking (the machinery that turns a table into flags, environment variables and file keys
// is cli/command.h). Internal to src/cli (included by config.cpp only).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "cli/command.h"
#include "cli/config.h"
#include "util/url.h"

namespace llmq::cli {

// Secrets are never shown, not even in part.
inline std::string mask_secret(std::string_view) { return "***"; }

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
        {.name = "model-alias",
         .help = "NAME=MODEL: clients may call a served model NAME too (e.g. gpt-3.5-turbo=SmolLM2-135M-Instruct.Q4_1); repeatable, or comma-separated",
         .field = &Serve::model_alias, .repeatable = true},
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
             {.name = "prefill-slowdown",
              .help = "a prompt prefilled beside running streams advances at least 1/this as fast as in whole batches; wins over the stall factor (0: no floor)",
              .field = &Serve::prefill_slowdown, .max = 1000},
             {.name = "step-trace",
              .help = "write one JSON line per decode step to this file, for profiling (empty: none)",
              .field = &Serve::step_trace},
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
             {.name = "cors-origins",
              .help = "web origins (scheme://host[:port], comma-separated, or *) whose pages may call llmq from a browser (empty: none)",
              .field = &Serve::cors_origins},
             {.name = "cors-credentials",
              .help = "let browsers send credentials (cookies, HTTP auth) from the origins named in --cors-origins (never with *)",
              .field = &Serve::cors_credentials},
             {.name = "cors-max-age-s", .help = "how long a browser may cache a CORS preflight's answer",
              .field = &Serve::cors_max_age_s, .max = 86400},
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
        {.name = "elastic-namespace",
         .help = "create the (empty) data streams of this namespace, serve's --elastic-namespace",
         .field = &Setup::elastic_namespace},
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

}  // namespace llmq::cli
