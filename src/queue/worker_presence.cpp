#include "queue/worker_presence.h"

#include <nlohmann/json.hpp>

namespace llmq {

std::string encode_heartbeat(const WorkerHeartbeat& b) {
  return nlohmann::json{{"worker", b.worker}, {"slots", b.slots}, {"slots_busy", b.slots_busy},
                        {"models", b.models}}
      .dump();
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
