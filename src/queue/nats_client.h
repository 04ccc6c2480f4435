// The NATS side of scale-out, shared by gateway and worker: one connection (reconnecting for
// ever, with the publishes of an outage buffered), its JetStream context, the stream
// LLM_INFERENCE and one durable pull consumer per model, and the subjects they talk on.
//
// Subjects:
//   llmq.jobs.<model>          the work (JetStream; one consumer per model, non-overlapping)
//   llmq.events.<gateway>      a job's events, worker -> the gateway that admitted it (core NATS)
//   llmq.cancel                stop a job, gateway -> every worker (core NATS)
//   llmq.resend.<worker>       send a job's events again from a sequence number (core NATS)
//   llmq.workers               each worker's heartbeat: slots, loaded models (core NATS)
// A model name becomes a subject token by replacing every character outside [A-Za-z0-9_-] with
// '_' (a '.' would split the subject); the consumer is "llmq-" + that token.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace llmq::nats {

// A failed NATS or JetStream call: the status text, and the JetStream error code when the server
// gave one (10077: the stream is full).
class Error : public std::runtime_error {
 public:
  Error(const std::string& what, natsStatus status, jsErrCode code = static_cast<jsErrCode>(0));
  natsStatus status() const { return status_; }
  int js_code() const { return js_code_; }

 private:
  natsStatus status_;
  int js_code_;
};

// Throws Error unless `status` is NATS_OK.
void check(natsStatus status, const std::string& what, jsErrCode code = static_cast<jsErrCode>(0));

std::string subject_token(std::string_view model);
std::string jobs_subject(std::string_view model);
std::string consumer_name(std::string_view model);
inline constexpr const char* kJobsWildcard = "llmq.jobs.>";
inline constexpr const char* kCancelSubject = "llmq.cancel";
inline constexpr const char* kWorkersSubject = "llmq.workers";
std::string events_subject(std::string_view gateway_id);
std::string resend_subject(std::string_view worker_id);
// The advisory the server sends when a job ran out of deliveries (MaxDeliver).
inline constexpr const char* kMaxDeliveriesAdvisory = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>";

// How the queue lives in JetStream.
struct QueueSettings {
  std::int64_t max_jobs = 64;                   // MaxMsgs (+ DiscardNew): waiting + running
  std::chrono::milliseconds ack_wait{3000};     // a silent worker's jobs go to another after this
  std::int32_t max_deliver = 3;                 // runs of a job before it is dead
  std::chrono::seconds duplicates{120};         // window in which a re-published id is dropped
  bool file_storage = true;                     // survives a broker restart
};

// Deleters for nats.c objects.
struct MsgDeleter { void operator()(natsMsg* m) const { natsMsg_Destroy(m); } };
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;
struct SubDeleter { void operator()(natsSubscription* s) const { natsSubscription_Destroy(s); } };
using SubPtr = std::unique_ptr<natsSubscription, SubDeleter>;

class Connection {
 public:
  // Connects (retrying in the background if the server is not up yet: the first calls then wait
  // or fail until it is). `name` shows in the server's monitoring. `on_reconnect` runs on a NATS
  // thread after each reconnect.
  Connection(const std::string& url, const std::string& name,
             std::function<void()> on_reconnect = nullptr);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  natsConnection* raw() const { return nc_; }
  jsCtx* js() const { return js_; }
  bool connected() const;

  // Core NATS publish (buffered while reconnecting). False when it could not even be buffered.
  bool publish(const std::string& subject, std::string_view data);
  // Subscribes `fn` (called on that subscription's own NATS thread, one message at a time).
  SubPtr subscribe(const std::string& subject, std::function<void(natsMsg*)> fn);
  // Creates the stream and the consumer of each model, or brings their settings up to date.
  void ensure_queue(const QueueSettings& settings, const std::vector<std::string>& models);

 private:
  static void on_reconnected(natsConnection*, void* self);
  static void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure);

  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::function<void()> on_reconnect_;
  std::vector<std::unique_ptr<std::function<void(natsMsg*)>>> handlers_;  // subscriptions' closures
};

}  // namespace llmq::nats
