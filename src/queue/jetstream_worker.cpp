#include "queue/jetstream_worker.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace llmq {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A wall-clock moment from another machine as a moment of this one's steady clock.
Clock::time_point from_unix_ms(std::int64_t unix_ms) {
  return Clock::now() + milliseconds(unix_ms - now_unix_ms());
}

std::string_view data_of(natsMsg* msg) {
  return {natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))};
}

}  // namespace

// Runs on whichever thread emits (the decode loop, the pool's keeper): never blocks on the
// network (core NATS publishes are buffered).
class JetStreamWorker::Sink final : public JobSink {
 public:
  Sink(JetStreamWorker& worker, std::string job_id) : worker_(worker), job_id_(std::move(job_id)) {}

  void on_event(JobEvent event) override {
    const bool last = std::holds_alternative<DoneEvent>(event) || std::holds_alternative<ErrorEvent>(event);
    const auto* error = std::get_if<ErrorEvent>(&event);
    // Stopping: a job cut short goes back to the stream for another worker, and its client
    // sees that worker's run instead of an error.
    const bool hand_back = error != nullptr && error->code == "shutting_down" &&
                           worker_.handing_back_.load();
    {
      std::lock_guard lock(worker_.mu_);
      const auto it = worker_.held_.find(job_id_);
      if (it == worker_.held_.end() || it->second.ended) return;
      if (hand_back) {
        worker_.publish_event(it->second, RequeuedEvent{it->second.delivery + 1, "worker_stopping"});
      } else {
        worker_.publish_event(it->second, std::move(event));
      }
    }
    if (last) worker_.ended(job_id_, hand_back);
  }

 private:
  JetStreamWorker& worker_;
  const std::string job_id_;
};

JetStreamWorker::JetStreamWorker(nats::Connection& nc, JetStreamWorkerOptions options)
    : nc_(nc), options_(std::move(options)) {}

JetStreamWorker::~JetStreamWorker() {
  stop_fetching();
  fetchers_.clear();
  hand_back();
  flush_acks(SteadyClock::now() + std::chrono::seconds(2));
  cancel_sub_.reset();
  resend_sub_.reset();
  heartbeat_ = {};
  acker_ = {};
  pull_subs_.clear();
}

void JetStreamWorker::start() {
  for (const std::string& model : options_.models) {
    const std::string subject = nats::jobs_subject(model);
    const std::string durable = nats::consumer_name(model);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = kQueueName;
    so.Consumer = durable.c_str();
    natsSubscription* sub = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    nats::check(js_PullSubscribe(&sub, nc_.js(), subject.c_str(), durable.c_str(), nullptr, &so, &code),
                "consumer " + durable, code);
    pull_subs_[model] = nats::SubPtr(sub);
  }
  cancel_sub_ = nc_.subscribe(nats::kCancelSubject, [this](natsMsg* m) { on_cancel(m); });
  resend_sub_ = nc_.subscribe(nats::resend_subject(options_.worker_id),
                              [this](natsMsg* m) { on_resend(m); });
  fetching_ = true;
  for (const std::string& model : options_.models)
    fetchers_.emplace_back([this, model](std::stop_token stop) { fetch_loop(model, stop); });
  heartbeat_ = std::jthread([this](std::stop_token stop) { heartbeat_loop(stop); });
  acker_ = std::jthread([this](std::stop_token stop) { ack_loop(stop); });
}

void JetStreamWorker::stop_fetching() {
  fetching_ = false;
  changed_.notify_all();
  // A fetch under way ends within its timeout; until then the broker may still deliver to it,
  // and a job handed back meanwhile could come straight back here.
  for (std::jthread& fetcher : fetchers_) fetcher.request_stop();
  fetchers_.clear();
}

void JetStreamWorker::hand_back() {
  handing_back_ = true;
  // Jobs still waiting in an inbox never started here: straight back to the stream.
  for (const std::string& model : options_.models) {
    while (std::optional<JobPtr> job = options_.inbox(model).pop(milliseconds(0)))
      ended((*job)->id(), true);
  }
}

std::size_t JetStreamWorker::held() const {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (const auto& [id, h] : held_) n += h.ended ? 0 : 1;
  return n;
}

void JetStreamWorker::flush_acks(SteadyClock::time_point until) {
  while (SteadyClock::now() < until) {
    {
      std::lock_guard lock(mu_);
      if (settles_.empty()) break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  natsConnection_FlushTimeout(nc_.raw(), 1000);
}

void JetStreamWorker::fetch_loop(const std::string& model, const std::stop_token& stop) {
  natsSubscription* sub = pull_subs_.at(model).get();
  auto last_complaint = SteadyClock::time_point{};
  while (!stop.stop_requested()) {
    const std::int64_t room = fetching_ ? std::min<std::int64_t>(options_.room(model), 32) : 0;
    if (room <= 0) {
      // A job ending wakes this at once; a model loaded or evicted is seen within the timeout.
      std::unique_lock lock(mu_);
      changed_.wait_for(lock, milliseconds(50));
      continue;
    }
    natsMsgList list{};
    jsErrCode code = static_cast<jsErrCode>(0);
    const auto asked = SteadyClock::now();
    const natsStatus s = natsSubscription_Fetch(&list, sub, static_cast<int>(room), 500, &code);
    if (s == NATS_OK) {
      for (int i = 0; i < list.Count; ++i) {
        natsMsg* msg = list.Msgs[i];
        list.Msgs[i] = nullptr;  // ours now
        take(msg);
      }
      natsMsgList_Destroy(&list);
      continue;
    }
    natsMsgList_Destroy(&list);
    if (s == NATS_TIMEOUT) {
      // nats.c 3.4.1 may answer the next fetch with a timeout at once: don't spin on it.
      if (SteadyClock::now() - asked < milliseconds(100)) std::this_thread::sleep_for(milliseconds(20));
      continue;
    }
    if (SteadyClock::now() - last_complaint > std::chrono::seconds(10)) {
      last_complaint = SteadyClock::now();
      spdlog::warn("fetching {} jobs: {} (JetStream error {})", model, natsStatus_GetText(s),
                   static_cast<int>(code));
    }
    std::this_thread::sleep_for(milliseconds(250));
  }
}

void JetStreamWorker::take(natsMsg* raw) {
  nats::MsgPtr msg(raw);
  jsMsgMetaData* meta = nullptr;
  int delivery = 1;
  if (natsMsg_GetMetaData(&meta, raw) == NATS_OK) {
    delivery = static_cast<int>(meta->NumDelivered);
    jsMsgMetaData_Destroy(meta);
  }
  auto decoded = decode_work(data_of(raw));
  if (auto* why = std::get_if<std::string>(&decoded)) {
    // Never runnable: ended for good, not redelivered to every worker in turn.
    spdlog::error("a message on {} is not a job: {}; dropped", natsMsg_GetSubject(raw), *why);
    natsMsg_Term(raw, nullptr);
    return;
  }
  WorkItem work = std::move(std::get<WorkItem>(decoded));
  if (!fetching_) {
    // Fetched as this worker stops: straight back, and its client is told why.
    nc_.publish(work.reply_to, encode_event({work.id, delivery, 0, options_.worker_id,
                                             RequeuedEvent{delivery + 1, "worker_stopping"}}));
    natsMsg_Nak(raw, nullptr);
    return;
  }
  if (delivery > 1) ++redelivered_;
  const std::string id = work.id;
  const std::string model = work.request.model;
  std::optional<Clock::time_point> deadline;
  if (work.deadline_unix_ms) deadline = from_unix_ms(*work.deadline_unix_ms);
  auto job = std::make_shared<Job>(id, work.request, deadline, std::make_shared<Sink>(*this, id),
                                   from_unix_ms(work.arrived_unix_ms));
  {
    std::lock_guard lock(mu_);
    const auto it = held_.find(id);
    if (it != held_.end()) {
      // Delivered again while this worker holds it (its heartbeat was late: a broker outage).
      // Still running here: keep running, with the new delivery's handle. Ended here: ack it.
      if (!it->second.ended) {
        it->second.msg = std::move(msg);
      } else {
        settles_.push_back({std::move(msg), true, SteadyClock::now() + std::chrono::seconds(60)});
        changed_.notify_all();
      }
      return;
    }
    Held& h = held_[id];
    h.msg = std::move(msg);
    h.work = std::move(work);
    h.delivery = delivery;
    h.job = job;
  }
  spdlog::debug("job {}: fetched (model {}, delivery {})", id, model, delivery);
  if (options_.inbox(model).push(job) != PushResult::accepted) ended(id, true);
}

void JetStreamWorker::publish_event(Held& h, JobEvent event) {
  if (auto* started = std::get_if<StartedEvent>(&event)) {
    started->attempt += h.delivery - 1;  // the scheduler counts its own retries from 1
  }
  std::string encoded = encode_event({h.work.id, h.delivery, h.next_seq++, options_.worker_id, std::move(event)});
  nc_.publish(h.work.reply_to, encoded);
  h.events.push_back(std::move(encoded));
}

void JetStreamWorker::ended(const std::string& job_id, bool hand_back) {
  std::lock_guard lock(mu_);
  const auto it = held_.find(job_id);
  if (it == held_.end() || it->second.ended) return;
  Held& h = it->second;
  h.ended = true;
  h.ended_at = SteadyClock::now();
  if (h.msg) settles_.push_back({std::move(h.msg), !hand_back, SteadyClock::now() + std::chrono::seconds(60)});
  if (hand_back) held_.erase(it);  // another worker runs it; no events of ours to send again
  changed_.notify_all();
}

void JetStreamWorker::ack_loop(const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    std::optional<Settle> next;
    {
      std::lock_guard lock(mu_);
      if (!settles_.empty()) {
        next = std::move(settles_.front());
        settles_.pop_front();
      }
    }
    if (!next) {
      std::unique_lock lock(mu_);
      changed_.wait_for(lock, milliseconds(100), [&] { return !settles_.empty(); });
      continue;
    }
    if (!next->ack) {
      natsMsg_Nak(next->msg.get(), nullptr);
      continue;
    }
    // Confirmed, so that a job that finished is not run again: through a broker outage too.
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus s = natsMsg_AckSync(next->msg.get(), nullptr, &code);
    if (s == NATS_OK || code != 0 || SteadyClock::now() >= next->give_up) {
      if (s != NATS_OK && code == 0) spdlog::warn("an ack never reached the broker: the job may run again");
      continue;
    }
    std::this_thread::sleep_for(milliseconds(100));
    std::lock_guard lock(mu_);
    settles_.push_back(std::move(*next));  // tried again at once: the broker is back, or not
  }
}

void JetStreamWorker::heartbeat_loop(const std::stop_token& stop) {
  const auto period = std::max(milliseconds(100), options_.settings.ack_wait / 3);
  while (!stop.stop_requested()) {
    {
      std::lock_guard lock(mu_);
      const auto now = SteadyClock::now();
      for (auto it = held_.begin(); it != held_.end();) {
        Held& h = it->second;
        if (!h.ended && h.msg) natsMsg_InProgress(h.msg.get(), nullptr);
        if (h.ended && now - h.ended_at > options_.keep_events) {
          it = held_.erase(it);
        } else {
          ++it;
        }
      }
    }
    const auto until = SteadyClock::now() + period;
    while (!stop.stop_requested() && SteadyClock::now() < until) std::this_thread::sleep_for(milliseconds(50));
  }
}

void JetStreamWorker::on_cancel(natsMsg* msg) {
  const std::string id(data_of(msg));
  JobPtr job;
  std::string model;
  {
    std::lock_guard lock(mu_);
    const auto it = held_.find(id);
    if (it == held_.end() || it->second.ended) return;
    job = it->second.job.lock();
    model = it->second.work.request.model;
  }
  if (!job) return;
  job->cancel();
  // Still in the inbox (its model loading, say): it ends here; running: at the next step.
  if (options_.inbox(model).remove(id))
    job->emit(ErrorEvent{"cancelled", "every client of this request left while it waited"});
}

void JetStreamWorker::on_resend(natsMsg* msg) {
  const auto ask = nlohmann::json::parse(data_of(msg), nullptr, false);
  bool known = false;
  if (ask.is_object() && ask.value("id", "") != "" && ask.value("reply_to", "") != "") {
    const std::string id = ask.value("id", "");
    const int attempt = ask.value("attempt", 0);
    const std::int64_t from = std::max<std::int64_t>(0, ask.value("from", std::int64_t{0}));
    const std::string reply_to = ask.value("reply_to", "");
    std::lock_guard lock(mu_);
    const auto it = held_.find(id);
    if (it != held_.end() && it->second.delivery == attempt) {
      known = true;
      const Held& h = it->second;
      for (auto i = static_cast<std::size_t>(from); i < h.events.size(); ++i) nc_.publish(reply_to, h.events[i]);
    }
  }
  if (const char* reply = natsMsg_GetReply(msg); reply != nullptr && *reply != '\0')
    natsConnection_PublishString(nc_.raw(), reply, known ? "known" : "unknown");
}

}  // namespace llmq
