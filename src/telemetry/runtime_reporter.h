// RuntimeReporter: every `interval`, one runtime snapshot document (queue, slots, latency
// quantiles, token rate, process and host CPU/memory) into metrics-llmq.runtime-<namespace>,
// then the snapshots it relays for other processes (a gateway's workers).
//
// Runs on its own small thread rather than the I/O loop, so a slow /proc read never delays a
// request and snapshots keep coming while the loop drains at shutdown. submit() never blocks.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "telemetry/event_sink.h"
#include "telemetry/process_metrics.h"
#include "telemetry/request_document.h"
#include "telemetry/service_metrics.h"

namespace llmq::telemetry {

// A snapshot another process took (a worker's, from its heartbeat) that this one writes.
struct RelayedSnapshot {
  RuntimeSnapshot snapshot;
  std::string host;  // host.name of the process it describes
  std::string id;    // its document _id, the same from every relaying gateway: stored once
};

struct RuntimeSources {
  std::function<double()> queue_depth;
  std::function<double()> slots_busy;
  std::function<double()> slots_total;
  std::string worker;  // llmq.worker of this process's snapshots; empty: it decodes nothing
  // Snapshots written after each of this process's own (a gateway: its workers'). Called on
  // the reporter's thread only.
  std::function<std::vector<RelayedSnapshot>()> relayed;
};

class RuntimeReporter {
 public:
  RuntimeReporter(EventSink& sink, ServiceMetrics& metrics, RuntimeSources sources,
                  DocumentOrigin origin, std::chrono::milliseconds interval);
  ~RuntimeReporter();  // stops the thread

  // Takes one reading now; rates are since the previous one (or since construction).
  RuntimeSnapshot sample();
  void stop();

 private:
  void run(std::stop_token stop);

  EventSink& sink_;
  ServiceMetrics& metrics_;
  const RuntimeSources sources_;
  const DocumentOrigin origin_;
  const std::chrono::milliseconds interval_;

  // The previous reading, for the rates (reporter thread only after construction).
  std::chrono::steady_clock::time_point prev_at_;
  double prev_tokens_ = 0;
  ResourceSampler resources_;

  std::mutex mu_;
  std::condition_variable_any wake_;
  std::jthread thread_;  // last: started once everything above exists
};

}  // namespace llmq::telemetry
