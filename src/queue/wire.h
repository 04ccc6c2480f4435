// What crosses the network between a gateway and its workers: the work (a job as it waits in a
// JetStream stream) and the events a worker sends back about it. JSON both, one object a message.
//
// The work carries only what a worker needs to run the job: the resolved model, the prompt as
// tokens (the gateway tokenized it: a worker never re-validates), the sampling with the seed
// admission fixed (so a rerun after a crash samples the same tokens), the stops, max_tokens, and
// the times as wall-clock milliseconds (steady clocks do not cross machines). Decoding is strict:
// a message that is not a job llmq wrote is refused with the reason, never half-read.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "queue/job_events.h"
#include "queue/request.h"

namespace llmq {

struct WorkItem {
  std::string id;                                 // the request id
  ValidatedRequest request;                       // model, prompt tokens, max_tokens, sampling,
                                                  // stop, keep_alive
  std::int64_t arrived_unix_ms = 0;               // when the gateway admitted it
  std::optional<std::int64_t> deadline_unix_ms;   // whole-request deadline; none: no deadline
  std::string reply_to;                           // the subject its events go to
};

std::string encode_work(const WorkItem& work);
// The work, or why the bytes are not a job.
std::variant<WorkItem, std::string> decode_work(std::string_view bytes);

// One event of one run (attempt) of a job. `seq` counts the events of that run from 0, so the
// gateway notices one that core NATS lost.
struct WireEvent {
  std::string job_id;
  int attempt = 1;
  std::int64_t seq = 0;
  std::string worker;  // who sent it: where to ask for events again
  JobEvent event;  // StartedEvent, TokenEvent, DoneEvent or ErrorEvent (or LoadingEvent)
};

std::string encode_event(const WireEvent& event);
std::variant<WireEvent, std::string> decode_event(std::string_view bytes);

}  // namespace llmq
