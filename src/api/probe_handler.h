// ProbeHandler: the routes of a process that serves no requests of its own (a worker): GET
// /healthz (alive), GET /readyz (ready: `ready()` says so; 503 otherwise, with its reason) and
// GET /metrics. Everything else is a JSON 404 (405 for a known path with another method).
#pragma once

#include <functional>
#include <string>

#include "http/server.h"
#include "telemetry/metrics.h"

namespace llmq {

class ProbeHandler final : public http::Handler {
 public:
  // `ready` returns an empty string when ready, else the state to report ("loading",
  // "draining", …). Both may be called from any I/O thread.
  ProbeHandler(std::function<std::string()> ready, const telemetry::Registry& metrics)
      : ready_(std::move(ready)), metrics_(metrics) {}

  boost::asio::awaitable<void> handle(const http::Request& request, http::Exchange& exchange) override;
  http::HeadVerdict check_head(const http::RequestHead& head, std::string_view peer) override;

 private:
  http::Response answer(const http::Request& request) const;

  std::function<std::string()> ready_;
  const telemetry::Registry& metrics_;
};

}  // namespace llmq
