#include "queue/nats_client.h"

#include <spdlog/spdlog.h>

#include <vector>

namespace llmq::nats {

Error::Error(const std::string& what, natsStatus status, jsErrCode code)
    : std::runtime_error(what + ": " + natsStatus_GetText(status) +
                         (code != 0 ? " (JetStream error " + std::to_string(code) + ")" : "")),
      status_(status),
      js_code_(static_cast<int>(code)) {}

void check(natsStatus status, const std::string& what, jsErrCode code) {
  if (status != NATS_OK) throw Error(what, status, code);
}

std::string subject_token(std::string_view model) {
  std::string out(model);
  for (char& c : out) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-';
    if (!keep) c = '_';
  }
  return out.empty() ? "_" : out;
}

std::string jobs_subject(std::string_view model) { return "llmq.jobs." + subject_token(model); }
std::string consumer_name(std::string_view model) { return "llmq-" + subject_token(model); }
std::string events_subject(std::string_view gateway_id) {
  return "llmq.events." + subject_token(gateway_id);
}
std::string resend_subject(std::string_view worker_id) {
  return "llmq.resend." + subject_token(worker_id);
}

Connection::Connection(const std::string& url, const std::string& name,
                       std::function<void()> on_reconnect)
    : on_reconnect_(std::move(on_reconnect)) {
  natsOptions* opts = nullptr;
  check(natsOptions_Create(&opts), "NATS options");
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> owned(opts, natsOptions_Destroy);
  check(natsOptions_SetURL(opts, url.c_str()), "NATS URL " + url);
  check(natsOptions_SetName(opts, name.c_str()), "NATS client name");
  // A broker restart is an outage to wait out, never the end: reconnect for ever, quickly, and
  // keep what is published meanwhile (events, acks) to send once connected again.
  check(natsOptions_SetMaxReconnect(opts, -1), "NATS reconnects");
  check(natsOptions_SetReconnectWait(opts, 250), "NATS reconnect wait");
  check(natsOptions_SetReconnectBufSize(opts, 64 * 1024 * 1024), "NATS reconnect buffer");
  check(natsOptions_SetTimeout(opts, 2000), "NATS connect timeout");
  check(natsOptions_SetPingInterval(opts, 2000), "NATS ping interval");
  check(natsOptions_SetReconnectedCB(opts, &Connection::on_reconnected, this), "NATS callback");
  check(natsOptions_SetRetryOnFailedConnect(opts, true, nullptr, nullptr), "NATS retry");
  // A publish is written by the thread that makes it instead of waking the library's flusher
  // thread: a worker publishes one event per token from its decode loop, and on a machine whose
  // cores all decode, every extra wake-up is taken from decoding.
  check(natsOptions_SetSendAsap(opts, true), "NATS send-asap");
  natsStatus s = natsConnection_Connect(&nc_, opts);
  // With retry on, NATS_NOT_YET_CONNECTED means "connecting in the background".
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) check(s, "cannot connect to NATS at " + url);
  jsOptions jso;
  jsOptions_Init(&jso);
  jso.Wait = 5000;
  s = natsConnection_JetStream(&js_, nc_, &jso);
  if (s != NATS_OK) {
    natsConnection_Destroy(nc_);
    check(s, "JetStream context");
  }
}

Connection::~Connection() {
  if (nc_ != nullptr) {
    natsConnection_Flush(nc_);
    natsConnection_Close(nc_);
  }
  jsCtx_Destroy(js_);
  natsConnection_Destroy(nc_);
}

bool Connection::connected() const { return natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED; }

void Connection::on_reconnected(natsConnection*, void* self) {
  auto* c = static_cast<Connection*>(self);
  spdlog::info("NATS: reconnected");
  if (c->on_reconnect_) c->on_reconnect_();
}

bool Connection::publish(const std::string& subject, std::string_view data) {
  const natsStatus s = natsConnection_Publish(nc_, subject.c_str(), data.data(),
                                              static_cast<int>(data.size()));
  if (s != NATS_OK) spdlog::warn("NATS: publish to {} failed: {}", subject, natsStatus_GetText(s));
  return s == NATS_OK;
}

void Connection::on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  MsgPtr owned(msg);
  try {
    (*static_cast<std::function<void(natsMsg*)>*>(closure))(msg);
  } catch (const std::exception& e) {
    spdlog::error("NATS: a message on {} could not be handled: {}", natsMsg_GetSubject(msg), e.what());
  }
}

SubPtr Connection::subscribe(const std::string& subject, std::function<void(natsMsg*)> fn) {
  handlers_.push_back(std::make_unique<std::function<void(natsMsg*)>>(std::move(fn)));
  natsSubscription* sub = nullptr;
  check(natsConnection_Subscribe(&sub, nc_, subject.c_str(), &Connection::on_message,
                                 handlers_.back().get()),
        "subscribe to " + subject);
  // A slow handler must not lose events to the client library's default limit.
  natsSubscription_SetPendingLimits(sub, -1, -1);
  return SubPtr(sub);
}

void Connection::ensure_queue(const QueueSettings& settings, const std::vector<std::string>& models) {
  jsStreamConfig stream;
  jsStreamConfig_Init(&stream);
  const char* subjects[] = {kJobsWildcard};
  stream.Name = "LLM_INFERENCE";
  stream.Subjects = subjects;
  stream.SubjectsLen = 1;
  stream.Retention = js_WorkQueuePolicy;
  stream.Storage = settings.file_storage ? js_FileStorage : js_MemoryStorage;
  stream.MaxMsgs = settings.max_jobs;
  stream.Discard = js_DiscardNew;
  stream.Duplicates = std::chrono::duration_cast<std::chrono::nanoseconds>(settings.duplicates).count();
  jsErrCode code = static_cast<jsErrCode>(0);
  jsStreamInfo* info = nullptr;
  natsStatus s = js_AddStream(&info, js_, &stream, nullptr, &code);
  if (s != NATS_OK) {  // it exists: take this process's settings
    code = static_cast<jsErrCode>(0);
    s = js_UpdateStream(&info, js_, &stream, nullptr, &code);
  }
  jsStreamInfo_Destroy(info);
  check(s, "stream LLM_INFERENCE", code);

  for (const std::string& model : models) {
    const std::string durable = consumer_name(model);
    const std::string filter = jobs_subject(model);
    jsConsumerConfig consumer;
    jsConsumerConfig_Init(&consumer);
    consumer.Durable = durable.c_str();
    consumer.FilterSubject = filter.c_str();
    consumer.AckPolicy = js_AckExplicit;
    consumer.DeliverPolicy = js_DeliverAll;
    consumer.AckWait = std::chrono::duration_cast<std::chrono::nanoseconds>(settings.ack_wait).count();
    consumer.MaxDeliver = settings.max_deliver;
    consumer.MaxAckPending = -1;
    jsConsumerInfo* ci = nullptr;
    code = static_cast<jsErrCode>(0);
    s = js_AddConsumer(&ci, js_, "LLM_INFERENCE", &consumer, nullptr, &code);
    if (s != NATS_OK) {
      code = static_cast<jsErrCode>(0);
      s = js_UpdateConsumer(&ci, js_, "LLM_INFERENCE", &consumer, nullptr, &code);
    }
    jsConsumerInfo_Destroy(ci);
    check(s, "consumer " + durable, code);
  }
}

}  // namespace llmq::nats
