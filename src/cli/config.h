// The command line of `llmq`: subcommands, flags, LLMQ_* environment variables and an optional
// TOML config file, with the contract's precedence: flag > environment > file > built-in default.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace llmq {

// Where Elasticsearch is and how to authenticate: shared by serve and the elastic commands.
struct ElasticAccess {
  std::string elastic_url;       // Elasticsearch base URL; empty: off (serve)
  std::string elastic_api_key;   // "ApiKey" credential (secret)
  std::string elastic_user;      // basic auth user, when no API key
  std::string elastic_password;  // basic auth password (secret)
  std::string elastic_ca_file;   // PEM bundle to verify Elasticsearch with
};

// Which process `ServeConfig` configures: the all-in-one, or one side of scale-out.
enum class Role { serve, gateway, worker };

struct ServeConfig : ElasticAccess {
  Role role = Role::serve;                   // set by the subcommand
  std::string nats_url = "nats://127.0.0.1:4222";  // gateway, worker: the JetStream server
  std::int32_t ack_wait_ms = 3000;           // gateway, worker: a silent worker's jobs move after this
  std::string model;                         // GGUF path; default: the set-up's default model
  // The warm pool (engine/model_pool.h): more models beside --model, and which stay in memory.
  std::string models;                        // more GGUF paths, comma-separated (--model: default)
  std::int32_t max_loaded = 2;               // most models in memory at once
  std::string keep_alive = "5m";             // how long an idle model stays (util/keep_alive.h)
  std::string preload;                       // names loaded before ready; empty: --model's
  std::string pin;                           // names never unloaded, comma-separated
  std::string model_alias;                   // NAME=MODEL pairs, comma-separated (other names)
  std::string host = "127.0.0.1";            // listen address
  std::int32_t port = 8080;                  // listen port (0: any free port)
  std::int32_t slots = 4;                    // sequences decoded concurrently
  std::int32_t threads = 0;                  // CPU threads for decoding (0: all cores)
  std::int32_t ctx_size = 4096;              // tokens per slot (prompt + completion)
  std::int32_t batch_size = 512;             // most tokens in one decode step
  std::int32_t queue_max = 64;               // waiting jobs before 429 queue_full
  std::int32_t ping_interval_ms = 1000;      // SSE ping period while waiting / idle
  bool elastic_setup = false;                // install the index templates before shipping
  std::string elastic_namespace = "default";  // data streams logs-llmq.requests-<namespace>, …
  std::string spool_dir;                     // request documents kept on disk; default below
  std::int32_t snapshot_interval_ms = 10000; // runtime snapshot period
  std::string service_name = "llmq";         // service.name of every document
  std::int64_t max_body_bytes = 1 << 20;     // request body limit (413 past it)
  std::int32_t max_header_bytes = 16 << 10;  // request header limit (431 past it)
  std::int32_t header_timeout_ms = 10000;    // a request's headers must arrive within this
  std::int32_t body_timeout_ms = 30000;      // and its body within this
  std::int32_t idle_timeout_ms = 60000;      // a keep-alive connection may idle this long
  std::int32_t send_timeout_ms = 60000;      // a write may wait this long for the client
  std::int32_t max_connections = 1024;       // connections served at once (503 past it)
  std::int64_t max_stream_buffer_bytes = 1 << 20;  // unread bytes of a stream before it is cut
  std::int64_t timeout_ms = 600000;          // default whole-request deadline; 0: none
  std::int32_t default_max_tokens = 256;     // max_tokens when a request gives none
  std::int32_t http_threads = 1;             // threads running the HTTP I/O loop
  std::string log_level = "info";            // trace, debug, info, warn, error
  std::int32_t metrics_window_s = 60;        // span of llmq_request_duration_window_seconds
  std::int64_t drain_timeout_ms = 30000;     // on SIGTERM, how long queued/running jobs may go on
  std::int32_t idempotency_ttl_s = 600;      // how long an Idempotency-Key's result is kept
  std::int32_t max_attempts = 3;             // runs of a job whose decode fails before any output
  std::int32_t worker_nice = 5;              // niceness of the decode threads (HTTP stays at 0)
  double decode_stall_factor = 3.0;          // chunked prefill: streams' step budget (0: none)
  double prefill_slowdown = 2.0;             // chunked prefill: newcomers' budget (0: none)
  std::string step_trace;                    // file of one JSON line per decode step; empty: none
  std::string api_key;                       // required API key(s), comma-separated (secret)
  std::string api_key_file;                  // one key per line, with per-key limits
  std::int32_t client_max_concurrent = 0;    // per client, queued + running; 0: no limit
  double client_rate = 0;                    // per client, requests/s (token bucket); 0: no limit
  double client_burst = 0;                   // per client bucket size; 0: max(1, rate)
  std::int32_t client_max_connections = 0;   // connections one client address may hold; 0: any
  std::string trusted_proxies;               // peers whose X-Forwarded-For names the client
  std::string cors_origins;                  // web origins browsers may let call llmq; empty: none
  bool cors_credentials = false;             // Access-Control-Allow-Credentials for named origins
  std::int32_t cors_max_age_s = 600;         // how long a browser may cache a preflight
  std::string config_file;                   // the TOML file the values were read from, if any
};

// `llmq elastic setup`: installs the index templates of both data streams, then creates the
// two data streams of a namespace (empty), so Kibana's data views have their fields before
// llmq's first document.
struct ElasticSetupConfig : ElasticAccess {
  std::string requests_retention = "30d";  // lifecycle retention of logs-llmq.requests-*
  std::string runtime_retention = "7d";    // lifecycle retention of metrics-llmq.runtime-*
  std::string elastic_namespace = "default";  // whose data streams are created
  std::string config_file;
};

// `llmq elastic replay`: ships a spool directory's documents, then exits.
struct ElasticReplayConfig : ElasticAccess {
  std::string spool_dir;              // default: the one serve uses
  std::int64_t timeout_ms = 300000;   // give up (documents stay spooled) after this long
  bool elastic_setup = false;         // install the index templates first
  std::string config_file;
};

// `llmq kibana setup`: imports the data views and the dashboard into Kibana.
struct KibanaSetupConfig {
  std::string kibana_url = "http://127.0.0.1:5601";
  std::string kibana_api_key;   // "ApiKey" credential (secret)
  std::string kibana_user;      // basic auth user, when no API key
  std::string kibana_password;  // basic auth password (secret)
  std::string kibana_ca_file;   // PEM bundle to verify Kibana with
  std::string space;            // Kibana space id; empty: the default space
  std::string config_file;
};

// What the command line asks for: run a subcommand with its config, or exit now with a code
// after help/version/an error was printed.
struct ExitNow {
  int code;  // 0 after --help, 2 after a usage error
};
// `llmq --version` (or `llmq version`): print what this binary is and runs on (telemetry/
// build_info.h), which only the binary that links llama.cpp can tell.
struct ShowVersion {};
using CommandLine = std::variant<ServeConfig, ElasticSetupConfig, ElasticReplayConfig,
                                 KibanaSetupConfig, ShowVersion, ExitNow>;

// Looks up an environment variable; nullopt when unset. Injected so tests need no real env.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_env();

// Parses argv. Prints help to stdout, and a usage error as one line on stderr.
CommandLine parse_command_line(int argc, const char* const* argv, const EnvLookup& env);

// The effective configuration as one log line, secrets masked.
std::string describe(const ServeConfig& config);
std::string describe(const ElasticSetupConfig& config);
std::string describe(const ElasticReplayConfig& config);
std::string describe(const KibanaSetupConfig& config);

// The GGUF files `serve` serves: --model first (the default model), then --models in their
// order, each path once.
std::vector<std::string> served_model_paths(const ServeConfig& config);
// What clients call the model of a file: its stem (ModelInfo::name).
std::string model_name_of(const std::string& path);
// A comma-separated list, each item trimmed, empty ones left out.
std::vector<std::string> split_list(std::string_view text);

// Where the set-up puts the default model:
// $LLMQ_MODELS_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/llmq/models, + the file name.
std::string default_model_path(const EnvLookup& env);
// ${XDG_CACHE_HOME:-$HOME/.cache}/llmq/spool: where documents wait for Elasticsearch.
std::string default_spool_dir(const EnvLookup& env);

inline constexpr const char* kDefaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf";

}  // namespace llmq
