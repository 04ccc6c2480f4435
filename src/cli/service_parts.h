// The parts every llmq process that serves shares (serve, gateway, worker): checking the model
// files and this CPU, logging, where documents go, the HTTP server's limits and what it reports.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "api/api_keys.h"
#include "api/client_identity.h"
#include "api/cors.h"
#include "engine/model_catalog.h"

#include "cli/config.h"
#include "engine/step_trace.h"
#include "http/server.h"
#include "telemetry/build_info.h"
#include "telemetry/event_sink.h"
#include "telemetry/refusal_documents.h"
#include "telemetry/request_document.h"
#include "telemetry/service_metrics.h"

namespace llmq {

// --step-trace's file, open, or null when none was asked for; nullopt (with one line on stderr)
// when it cannot be written.
std::optional<std::unique_ptr<StepTrace>> open_step_trace(const ServeConfig& config);

// A missing or foreign model file is refused before anything listens, with one line on stderr.
bool check_model_file(const std::string& path);
// The served models' names (their file stems, --model's first), unchecked.
std::vector<std::string> served_model_names(const ServeConfig& config);
// The served models' names (their file stems, --model's first), every file checked; nullopt
// once one was refused.
std::optional<std::vector<std::string>> checked_model_names(const ServeConfig& config);

// What a process that answers clients needs before it listens: who may call, who a keyless
// client is, where the request documents go.
struct ClientSide {
  ApiKeys api_keys;
  ClientIdentity identity;
  CorsPolicy cors;
  std::vector<ModelAlias> aliases;  // --model-alias, checked against the served models
  std::unique_ptr<telemetry::EventSink> documents;
};
// The client side from the flags, or the exit code after one line on stderr (2: a bad key,
// proxy list, CORS origin or model alias; 1: a spool directory that cannot be used).
std::variant<ClientSide, int> client_side(const ServeConfig& config);
std::string host_name();
// "host/pid": who runs a job, in `started` and the request documents.
std::string worker_id();
// Where the documents go: Elasticsearch when a URL is set, else only the spool, kept for a later
// run with a URL to replay. Throws when the spool directory cannot be used.
std::unique_ptr<telemetry::EventSink> make_document_sink(const ServeConfig& config);
// The server's limits; the open-file limit is raised first so that max_connections can be
// honoured, or is clamped (with a warning) to what that limit allows.
http::ServerLimits server_limits(const ServeConfig& config);
// What the server reports about connections, into the metrics (and a document per refusal).
http::ServerObserver server_observer(telemetry::ServiceMetrics& metrics,
                                     telemetry::EventSink& documents,
                                     telemetry::RefusalDocuments& refusals,
                                     const telemetry::DocumentOrigin& origin);
void configure_logging(const std::string& level);
// Runs the I/O loop on `threads` threads until it is stopped.
void run_io(boost::asio::io_context& io, int threads);
// Every request has its document by now: Elasticsearch gets a moment, the rest is spooled.
void close_documents(telemetry::EventSink& documents, const std::string& spool_dir);
// Logs what runs (llama.cpp, the CPU features its build uses, this CPU) and refuses to start
// when the build needs an instruction set this CPU lacks: a llama.cpp built on another machine
// would otherwise die of SIGILL on the first request. False when refused.
bool check_build_for_this_cpu(const telemetry::BuildInfo& build);

}  // namespace llmq
