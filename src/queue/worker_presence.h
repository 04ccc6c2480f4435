// Who is working: each worker publishes a heartbeat on llmq.workers every couple of seconds (its
// slots, busy slots, the state of each of its models, and the CPU and memory it and its host
// use), and a gateway keeps the latest of each. The gateway exposes them as metrics (slots per
// worker), answers "is this model warm anywhere" for /v1/models, and writes each worker's
// runtime documents (workers have no Elasticsearch of their own). A worker silent for `expiry`
// is gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "queue/nats_client.h"
#include "telemetry/resource_use.h"

namespace llmq {

struct WorkerHeartbeat {
  std::string worker;
  std::int32_t slots = 0;       // of its loaded models
  std::int32_t slots_busy = 0;
  std::map<std::string, std::string> models;  // model -> "cold" | "loading" | "warm"
  // Since heartbeats carry resources; an older worker's have none (then 0, "" and nullopt).
  std::int64_t at_ms = 0;  // when the worker sampled them, ms since the epoch (its clock)
  std::string host;        // the worker's host.name
  std::optional<telemetry::ResourceUse> resources;  // over the span since its previous beat
};

std::string encode_heartbeat(const WorkerHeartbeat& beat);
// nullopt for bytes that are no heartbeat.
std::optional<WorkerHeartbeat> decode_heartbeat(std::string_view bytes);

class WorkerPresence {
 public:
  // Listens on llmq.workers.
  WorkerPresence(nats::Connection& nc, std::chrono::milliseconds expiry = std::chrono::seconds(10));

  // The live workers' latest heartbeats.
  std::vector<WorkerHeartbeat> live() const;
  // Whether some live worker has the model warm.
  bool warm_anywhere(const std::string& model) const;

 private:
  struct Seen {
    WorkerHeartbeat beat;
    std::chrono::steady_clock::time_point at;
  };
  const std::chrono::milliseconds expiry_;
  mutable std::mutex mu_;
  std::map<std::string, Seen> workers_;
  nats::SubPtr sub_;
};

}  // namespace llmq
