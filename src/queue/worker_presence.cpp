#include "queue/worker_presence.h"

#include <nlohmann/json.hpp>

namespace llmq {

namespace {

template <typename T>
void put_if(nlohmann::json& j, const char* key, const std::optional<T>& v) {
  if (v) j[key] = *v;
}

template <typename T>
void get_if(const nlohmann::json& j, const char* key, std::optional<T>& v) {
  if (j.contains(key) && j[key].is_number()) v = j[key].get<T>();
}

}  // namespace

std::string encode_heartbeat(const WorkerHeartbeat& b) {
  nlohmann::json j{{"worker", b.worker}, {"slots", b.slots}, {"slots_busy", b.slots_busy},
                   {"models", b.models}};
  if (b.resources) {
    nlohmann::json r = nlohmann::json::object();
    put_if(r, "process_cpu_pct", b.resources->process_cpu_pct);
    put_if(r, "host_cpu_pct", b.resources->host_cpu_pct);
    put_if(r, "process_rss_bytes", b.resources->process_rss_bytes);
    put_if(r, "host_memory_used_bytes", b.resources->host_memory_used_bytes);
    j["resources"] = std::move(r);
    j["at_ms"] = b.at_ms;
    j["host"] = b.host;
  }
  return j.dump();
}

std::optional<WorkerHeartbeat> decode_heartbeat(std::string_view bytes) {
  const auto j = nlohmann::json::parse(bytes, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  try {
    WorkerHeartbeat b;
    b.worker = j.at("worker").get<std::string>();
    b.slots = j.at("slots").get<std::int32_t>();
    b.slots_busy = j.at("slots_busy").get<std::int32_t>();
    b.models = j.at("models").get<std::map<std::string, std::string>>();
    if (b.worker.empty()) return std::nullopt;
    if (j.contains("resources") && j["resources"].is_object()) {
      const nlohmann::json& r = j["resources"];
      telemetry::ResourceUse use;
      get_if(r, "process_cpu_pct", use.process_cpu_pct);
      get_if(r, "host_cpu_pct", use.host_cpu_pct);
      get_if(r, "process_rss_bytes", use.process_rss_bytes);
      get_if(r, "host_memory_used_bytes", use.host_memory_used_bytes);
      b.at_ms = j.at("at_ms").get<std::int64_t>();
      b.host = j.at("host").get<std::string>();
      b.resources = use;
    }
    return b;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

WorkerPresence::WorkerPresence(nats::Connection& nc, std::chrono::milliseconds expiry)
    : expiry_(expiry) {
  sub_ = nc.subscribe(nats::kWorkersSubject, [this](natsMsg* msg) {
    auto beat = decode_heartbeat(std::string_view(
        natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
    if (!beat) return;
    // The key is copied first: in `map[beat->worker] = {std::move(*beat), …}` the right side is
    // evaluated first and leaves the key empty, so every worker overwrote one entry.
    const std::string worker = beat->worker;
    std::lock_guard lock(mu_);
    workers_[worker] = Seen{std::move(*beat), std::chrono::steady_clock::now()};
  });
}

std::vector<WorkerHeartbeat> WorkerPresence::live() const {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  std::vector<WorkerHeartbeat> out;
  for (const auto& [id, seen] : workers_)
    if (now - seen.at < expiry_) out.push_back(seen.beat);
  return out;
}

bool WorkerPresence::warm_anywhere(const std::string& model) const {
  for (const WorkerHeartbeat& b : live()) {
    const auto it = b.models.find(model);
    if (it != b.models.end() && it->second == "warm") return true;
  }
  return false;
}

}  // namespace llmq
