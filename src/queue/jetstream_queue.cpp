#include "queue/jetstream_queue.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include <nlohmann/json.hpp>

namespace llmq {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// A steady-clock moment as wall-clock milliseconds, for another machine to read.
std::int64_t to_unix_ms(Clock::time_point t) {
  return unix_ms(std::chrono::system_clock::now()) +
         std::chrono::duration_cast<milliseconds>(t - Clock::now()).count();
}

WorkItem work_of(const Job& job, const std::string& reply_to) {
  WorkItem w;
  w.id = job.id();
  w.request = job.request();
  w.arrived_unix_ms = to_unix_ms(job.arrived());
  if (job.deadline()) w.deadline_unix_ms = to_unix_ms(*job.deadline());
  w.reply_to = reply_to;
  return w;
}

// The poller's JetStream calls give up after this: a broker that is away must not hold the
// positions' refresh (or the gateway's shutdown) for the library's default 5 s per call.
jsOptions poll_call_options() {
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = 1000;
  return o;
}

// How long a running job may be silent before its worker is asked about it.
milliseconds quiet_limit(const nats::QueueSettings& s) {
  return std::max(milliseconds(2000), s.ack_wait);
}

}  // namespace

JetStreamQueue::JetStreamQueue(nats::Connection& nc, JetStreamQueueOptions options)
    : nc_(nc),
      options_(std::move(options)),
      events_subject_(nats::events_subject(options_.gateway_id)) {
  for (const std::string& model : options_.models) states_[model].model = model;
  events_sub_ = nc_.subscribe(events_subject_, [this](natsMsg* m) { on_event(m); });
  advisory_sub_ = nc_.subscribe(nats::kMaxDeliveriesAdvisory, [this](natsMsg* m) { on_advisory(m); });
  natsConnection_Flush(nc_.raw());
  poller_ = std::jthread([this](std::stop_token stop) { poll_loop(stop); });
}

JetStreamQueue::~JetStreamQueue() {
  stopping_ = true;
  poller_.request_stop();
  if (poller_.joinable()) poller_.join();
  events_sub_.reset();
  advisory_sub_.reset();
}

PushResult JetStreamQueue::push(JobPtr job) {
  const std::string subject = nats::jobs_subject(job->request().model);
  const std::string body = encode_work(work_of(*job, events_subject_));
  const std::string id = job->id();
  {
    // Known before it is published: its first events may come back before the publish returns.
    std::lock_guard lock(mu_);
    Tracked& t = jobs_[id];
    t.job = job;
    t.model = job->request().model;
    t.last_heard = SteadyClock::now();
  }
  jsPubOptions opts;
  jsPubOptions_Init(&opts);
  opts.MsgId = id.c_str();
  opts.MaxWait = options_.publish_timeout.count();
  jsPubAck* ack = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus s = js_Publish(&ack, nc_.js(), subject.c_str(), body.data(),
                                  static_cast<int>(body.size()), &opts, &code);
  std::lock_guard lock(mu_);
  if (s != NATS_OK) {
    jobs_.erase(id);
    jsPubAck_Destroy(ack);
    if (code == JSStreamStoreFailedErr) return PushResult::full;  // MaxMsgs + DiscardNew
    spdlog::warn("job {}: JetStream did not take it: {} (error {})", id, natsStatus_GetText(s),
                 static_cast<int>(code));
    return PushResult::unavailable;
  }
  const auto it = jobs_.find(id);
  if (it != jobs_.end()) {
    it->second.seq = ack->Sequence;
    by_seq_[ack->Sequence] = id;
  }
  jsPubAck_Destroy(ack);
  ++pushed_since_poll_;
  return PushResult::accepted;
}

bool JetStreamQueue::remove(const std::string& job_id) {
  std::uint64_t seq = 0;
  {
    std::lock_guard lock(mu_);
    const auto it = jobs_.find(job_id);
    if (it == jobs_.end() || it->second.started || it->second.seq == 0) return false;
    seq = it->second.seq;
  }
  // Deleted, the message reaches no worker; one that fetched it already (it waits in a
  // worker's inbox, say for a model to load) is told by the cancel below. Not deleted: it ran.
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus s = js_DeleteMsg(nc_.js(), kQueueName, seq, nullptr, &code);
  nc_.publish(nats::kCancelSubject, job_id);
  if (s != NATS_OK) return false;
  std::lock_guard lock(mu_);
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.started) return false;
  by_seq_.erase(seq);
  jobs_.erase(it);
  return true;
}

void JetStreamQueue::stop(const Job& job) { nc_.publish(nats::kCancelSubject, job.id()); }

std::optional<std::int64_t> JetStreamQueue::position(const std::string& job_id) const {
  std::lock_guard lock(mu_);
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.started || it->second.seq == 0) return std::nullopt;
  const Tracked& t = it->second;
  const auto d = delivered_seq_.find(t.model);
  const std::uint64_t delivered = d == delivered_seq_.end() ? 0 : d->second;
  if (t.seq <= delivered) return std::nullopt;  // a worker took it
  std::int64_t ahead = 0;
  for (auto s = by_seq_.upper_bound(delivered); s != by_seq_.end() && s->first < t.seq; ++s) {
    const auto other = jobs_.find(s->second);
    if (other != jobs_.end() && other->second.model == t.model && !other->second.started) ++ahead;
  }
  return ahead;
}

std::vector<WaitingJob> JetStreamQueue::waiting(std::size_t limit) const {
  std::lock_guard lock(mu_);
  std::vector<WaitingJob> out;
  std::map<std::string, std::int64_t> ahead;  // per model: its jobs listed so far
  for (const auto& [seq, id] : by_seq_) {
    if (out.size() == limit) break;
    const auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.started) continue;
    const Tracked& t = it->second;
    const auto d = delivered_seq_.find(t.model);
    if (d != delivered_seq_.end() && seq <= d->second) continue;  // a worker took it
    out.push_back({id, t.model, ahead[t.model]++, t.job->arrived()});
  }
  return out;
}

std::int64_t JetStreamQueue::depth() const {
  std::lock_guard lock(mu_);
  std::int64_t pending = pushed_since_poll_;
  for (const auto& [model, state] : states_) pending += state.pending;
  return pending;
}

void JetStreamQueue::refresh() {
  std::int64_t pushed_before = 0;
  {
    std::lock_guard lock(mu_);
    pushed_before = pushed_since_poll_;
  }
  std::map<std::string, ModelQueueState> states;
  std::map<std::string, std::uint64_t> delivered;
  for (const std::string& model : options_.models) {
    if (stopping_.load()) return;
    jsConsumerInfo* ci = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const std::string name = nats::consumer_name(model);
    jsOptions opts = poll_call_options();
    if (js_GetConsumerInfo(&ci, nc_.js(), kQueueName, name.c_str(), &opts, &code) != NATS_OK) {
      continue;  // the broker is away: keep the last known state
    }
    ModelQueueState& st = states[model];
    st.model = model;
    st.pending = static_cast<std::int64_t>(ci->NumPending);
    st.ack_pending = ci->NumAckPending;
    st.redelivered = ci->NumRedelivered;
    delivered[model] = ci->Delivered.Stream;
    jsConsumerInfo_Destroy(ci);
  }
  std::lock_guard lock(mu_);
  for (auto& [model, st] : states) states_[model] = st;
  for (auto& [model, seq] : delivered) delivered_seq_[model] = seq;
  pushed_since_poll_ = std::max<std::int64_t>(0, pushed_since_poll_ - pushed_before);
}

std::vector<ModelQueueState> JetStreamQueue::model_states() const {
  std::lock_guard lock(mu_);
  std::vector<ModelQueueState> out;
  for (const auto& [model, st] : states_) out.push_back(st);
  return out;
}

JetStreamCounters JetStreamQueue::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

std::size_t JetStreamQueue::tracked() const {
  std::lock_guard lock(mu_);
  return jobs_.size();
}

void JetStreamQueue::finish(const std::string& job_id, JobEvent last) {
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  it->second.job->emit(std::move(last));
  by_seq_.erase(it->second.seq);
  jobs_.erase(it);
}

void JetStreamQueue::on_event(natsMsg* msg) {
  auto decoded = decode_event(std::string_view(natsMsg_GetData(msg),
                                               static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
  if (auto* why = std::get_if<std::string>(&decoded)) {
    spdlog::warn("an event on {} is not one llmq sends: {}", events_subject_, *why);
    return;
  }
  WireEvent& e = std::get<WireEvent>(decoded);
  std::lock_guard lock(mu_);
  const auto it = jobs_.find(e.job_id);
  if (it == jobs_.end()) return;  // ended here already (a late or repeated event)
  apply(it->second, std::move(e));
}

void JetStreamQueue::apply(Tracked& t, WireEvent&& e) {
  if (e.attempt < t.attempt) return;  // an earlier run, replaced by a later one
  if (e.attempt > t.attempt) {
    if (t.attempt > 0 && t.started) ++counters_.reruns;
    // A run after another: the client learns why, unless the last worker said so itself.
    if (t.attempt > 0 && t.requeue_told < e.attempt) {
      t.requeue_told = e.attempt;
      t.job->emit(RequeuedEvent{e.attempt, "worker_lost"});
    }
    t.attempt = e.attempt;
    t.next_seq = 0;
    std::ranges::fill(t.next_index, 0);
  }
  if (e.seq < t.next_seq) return;  // sent again, and had arrived
  t.last_heard = SteadyClock::now();
  t.silent_checks = 0;
  if (!e.worker.empty()) t.worker = e.worker;
  if (e.seq > t.next_seq) {  // one went missing: hold this back, ask for the rest again
    ++counters_.event_gaps;
    request_resend(t);
    return;
  }
  ++t.next_seq;
  const std::string id = t.job->id();
  if (auto* started = std::get_if<StartedEvent>(&e.event)) {
    t.started = true;
    started->attempt = e.attempt;
    t.job->emit(std::move(e.event));
    return;
  }
  if (auto* token = std::get_if<TokenEvent>(&e.event)) {
    const auto choice = static_cast<std::size_t>(token->choice);
    if (t.sent.size() <= choice) {
      t.sent.resize(choice + 1);
      t.next_index.resize(choice + 1, 0);
    }
    std::vector<std::string>& sent = t.sent[choice];
    const auto index = static_cast<std::size_t>(t.next_index[choice]++);
    if (index < sent.size()) {  // a rerun: the client has this piece already
      if (sent[index] == token->text) {
        ++counters_.tokens_suppressed;
        return;
      }
      ++counters_.diverged;
      nc_.publish(nats::kCancelSubject, id);
      spdlog::warn("job {}: run {} sampled other text at piece {} than the run before", id,
                   e.attempt, index);
      finish(id, ErrorEvent{"rerun_diverged",
                            "the job ran again after its worker stopped, and the new run's text "
                            "differs from the " + std::to_string(sent.size()) +
                                " pieces already sent; those stay valid"});
      return;
    }
    sent.push_back(token->text);
    token->index = static_cast<std::int64_t>(index);
    token->sampled = Clock::now();
    t.job->emit(std::move(e.event));
    return;
  }
  if (std::holds_alternative<DoneEvent>(e.event) || std::holds_alternative<ErrorEvent>(e.event)) {
    finish(id, std::move(e.event));
    return;
  }
  if (const auto* requeued = std::get_if<RequeuedEvent>(&e.event)) {
    if (t.requeue_told >= requeued->attempt) return;
    t.requeue_told = requeued->attempt;
  }
  t.job->emit(std::move(e.event));  // loading, requeued
}

void JetStreamQueue::request_resend(Tracked& t) {
  const auto now = SteadyClock::now();
  if (t.worker.empty() || now - t.last_resend < milliseconds(200)) return;
  t.last_resend = now;
  ++counters_.resends;
  const nlohmann::json ask{{"id", t.job->id()}, {"attempt", t.attempt}, {"from", t.next_seq},
                           {"reply_to", events_subject_}};
  nc_.publish(nats::resend_subject(t.worker), ask.dump());
}

void JetStreamQueue::recover_events() {
  std::lock_guard lock(mu_);
  for (auto& [id, t] : jobs_)
    if (t.attempt > 0) request_resend(t);
}

void JetStreamQueue::abandon_all() {
  std::vector<std::pair<std::string, std::uint64_t>> waiting;
  {
    std::lock_guard lock(mu_);
    while (!jobs_.empty()) {
      const std::string id = jobs_.begin()->first;
      const Tracked& t = jobs_.begin()->second;
      if (!t.started && t.seq != 0) waiting.emplace_back(id, t.seq);
      nc_.publish(nats::kCancelSubject, id);
      finish(id, ErrorEvent{"shutting_down", "the server is shutting down"});
    }
  }
  for (const auto& [id, seq] : waiting) js_DeleteMsg(nc_.js(), kQueueName, seq, nullptr, nullptr);
  natsConnection_FlushTimeout(nc_.raw(), 1000);
}

void JetStreamQueue::on_advisory(natsMsg* msg) {
  const auto doc = nlohmann::json::parse(
      std::string_view(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))),
      nullptr, false);
  if (!doc.is_object() || !doc.contains("stream_seq") || !doc["stream_seq"].is_number_unsigned()) return;
  const auto seq = doc["stream_seq"].get<std::uint64_t>();
  // Out of deliveries, the message would hold a place in the stream for ever.
  js_DeleteMsg(nc_.js(), kQueueName, seq, nullptr, nullptr);
  std::lock_guard lock(mu_);
  const auto s = by_seq_.find(seq);
  if (s == by_seq_.end()) return;
  ++counters_.lost;
  spdlog::error("job {}: dead-lettered, its workers stopped {} times before it finished", s->second,
                options_.settings.max_deliver);
  finish(std::string(s->second),
         ErrorEvent{"worker_lost", "the workers running this job stopped " +
                                       std::to_string(options_.settings.max_deliver) +
                                       " times before it finished"});
}

void JetStreamQueue::check_quiet_jobs() {
  struct Quiet {
    std::string id, worker;
    int attempt;
    std::int64_t from;
    std::uint64_t seq;
  };
  std::vector<Quiet> quiet;
  const auto now = SteadyClock::now();
  {
    std::lock_guard lock(mu_);
    for (auto& [id, t] : jobs_) {
      if (t.attempt == 0 || now - t.last_heard < quiet_limit(options_.settings)) continue;
      quiet.push_back({id, t.worker, t.attempt, t.next_seq, t.seq});
    }
  }
  for (const Quiet& q : quiet) {
    // Is its worker still at it? It sends again whatever may be missing, and says whether it
    // knows the job.
    bool known = false;
    if (!q.worker.empty()) {
      const nlohmann::json ask{{"id", q.id}, {"attempt", q.attempt}, {"from", q.from},
                               {"reply_to", events_subject_}};
      const std::string body = ask.dump();
      natsMsg* reply = nullptr;
      if (natsConnection_Request(&reply, nc_.raw(), nats::resend_subject(q.worker).c_str(),
                                 body.data(), static_cast<int>(body.size()), 500) == NATS_OK) {
        known = std::string_view(natsMsg_GetData(reply),
                                 static_cast<std::size_t>(natsMsg_GetDataLength(reply))) == "known";
        natsMsg_Destroy(reply);
      }
    }
    // Not known there: if the message is still in the stream, another worker will get it
    // (AckWait); if not, the job finished and its last events are lost.
    bool in_stream = known;
    if (!known) {
      natsMsg* m = nullptr;
      jsErrCode code = static_cast<jsErrCode>(0);
      jsOptions opts = poll_call_options();
      const natsStatus s = js_GetMsg(&m, nc_.js(), kQueueName, q.seq, &opts, &code);
      if (s == NATS_OK) in_stream = true;
      natsMsg_Destroy(m);
      if (s != NATS_OK && s != NATS_NOT_FOUND && code != JSNoMessageFoundErr) in_stream = true;  // broker away
    }
    std::lock_guard lock(mu_);
    const auto it = jobs_.find(q.id);
    if (it == jobs_.end() || it->second.attempt != q.attempt) continue;
    if (in_stream) {
      it->second.last_heard = SteadyClock::now();
      continue;
    }
    ++counters_.lost;
    spdlog::error("job {}: finished on worker {}, but its last events never arrived", q.id, q.worker);
    finish(q.id, ErrorEvent{"event_gap", "the job's last events were lost on the way from its worker"});
  }
}

void JetStreamQueue::poll_loop(const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    refresh();
    check_quiet_jobs();
    const auto until = SteadyClock::now() + options_.poll_interval;
    while (!stop.stop_requested() && SteadyClock::now() < until)
      std::this_thread::sleep_for(milliseconds(25));
  }
}

}  // namespace llmq
