#include "queue/wire.h"

#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

namespace llmq {
namespace {

using json = nlohmann::json;

// Every field is checked for its type; nlohmann's own exceptions would name no field.
class Reader {
 public:
  explicit Reader(const json& object) : object_(object) {}

  template <class T>
  T get(const char* name) const {
    const auto it = object_.find(name);
    if (it == object_.end()) throw std::invalid_argument(std::string("missing field ") + name);
    return as<T>(*it, name);
  }
  template <class T>
  std::optional<T> optional(const char* name) const {
    const auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return std::nullopt;
    return as<T>(*it, name);
  }
  const json* find(const char* name) const {
    const auto it = object_.find(name);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  const json& object(const char* name) const {
    const auto it = object_.find(name);
    if (it == object_.end() || !it->is_object())
      throw std::invalid_argument(std::string("field ") + name + " is not an object");
    return *it;
  }

 private:
  template <class T>
  static T as(const json& value, const char* name) {
    const bool ok = [&] {
      if constexpr (std::is_same_v<T, std::string>) return value.is_string();
      else if constexpr (std::is_same_v<T, bool>) return value.is_boolean();
      else if constexpr (std::is_floating_point_v<T>) return value.is_number();
      else if constexpr (std::is_unsigned_v<T>) return value.is_number_unsigned();
      else return value.is_number_integer();
    }();
    if (!ok) throw std::invalid_argument(std::string("field ") + name + " has the wrong type");
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      const bool fits = value.is_number_unsigned()
                            ? value.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())
                            : std::in_range<T>(value.get<std::int64_t>());
      if (!fits) throw std::invalid_argument(std::string("field ") + name + " is out of range");
    }
    return value.get<T>();
  }

  const json& object_;
};

json sampling_json(const SamplingParams& s) {
  json out{{"temperature", s.temperature},
           {"presence_penalty", s.presence_penalty},
           {"frequency_penalty", s.frequency_penalty}};
  if (s.top_p) out["top_p"] = *s.top_p;
  if (s.top_k) out["top_k"] = *s.top_k;
  if (s.seed) out["seed"] = *s.seed;
  if (!s.grammar.empty()) out["grammar"] = s.grammar;
  return out;
}

SamplingParams read_sampling(const Reader& r) {
  SamplingParams s;
  s.temperature = r.get<double>("temperature");
  s.presence_penalty = r.get<double>("presence_penalty");
  s.frequency_penalty = r.get<double>("frequency_penalty");
  s.top_p = r.optional<double>("top_p");
  s.top_k = r.optional<std::int32_t>("top_k");
  s.seed = r.optional<std::uint32_t>("seed");
  s.grammar = r.optional<std::string>("grammar").value_or("");
  return s;
}

// A non-empty array of tokens.
std::vector<Token> read_tokens(const json& tokens, const std::string& field) {
  if (!tokens.is_array() || tokens.empty())
    throw std::invalid_argument("field " + field + " is not a non-empty array");
  std::vector<Token> out;
  out.reserve(tokens.size());
  for (const json& t : tokens) {
    if (!t.is_number_integer() || t.get<std::int64_t>() < 0 || t.get<std::int64_t>() > INT32_MAX)
      throw std::invalid_argument("field " + field + " holds a value that is not a token");
    out.push_back(t.get<Token>());
  }
  return out;
}

template <class Parse>
auto decoded(std::string_view bytes, Parse parse) -> std::variant<decltype(parse(json{})), std::string> {
  try {
    const json doc = json::parse(bytes);
    if (!doc.is_object()) return std::string("not a JSON object");
    return parse(doc);
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
}

}  // namespace

std::string encode_work(const WorkItem& w) {
  const ParsedRequest& p = w.request.params;
  json out{{"v", 1},
           {"id", w.id},
           {"model", w.request.model},
           {"prompt_tokens", w.request.prompt_tokens},
           {"max_tokens", p.max_tokens},
           {"sampling", sampling_json(p.sampling)},
           {"stop", p.stop},
           {"arrived_unix_ms", w.arrived_unix_ms},
           {"reply_to", w.reply_to}};
  if (w.deadline_unix_ms) out["deadline_unix_ms"] = *w.deadline_unix_ms;
  if (p.keep_alive_ms) out["keep_alive_ms"] = *p.keep_alive_ms;
  if (p.top_logprobs) out["top_logprobs"] = *p.top_logprobs;
  if (p.n > 1) out["n"] = p.n;
  if (w.request.is_embedding()) out["embed_tokens"] = w.request.embed_tokens;
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::variant<WorkItem, std::string> decode_work(std::string_view bytes) {
  return decoded(bytes, [](const json& doc) {
    const Reader r(doc);
    if (r.get<int>("v") != 1) throw std::invalid_argument("unknown version");
    WorkItem w;
    w.id = r.get<std::string>("id");
    w.request.model = r.get<std::string>("model");
    if (const json* inputs = r.find("embed_tokens")) {
      if (!inputs->is_array() || inputs->empty() || inputs->size() > static_cast<std::size_t>(kMaxEmbedInputs))
        throw std::invalid_argument("field embed_tokens is not a non-empty array of inputs");
      for (const json& input : *inputs) {
        w.request.embed_tokens.push_back(read_tokens(input, "embed_tokens"));
      }
    } else {
      w.request.prompt_tokens = read_tokens(doc.at("prompt_tokens"), "prompt_tokens");
    }
    ParsedRequest& p = w.request.params;
    p.model = w.request.model;
    p.max_tokens = r.get<std::int32_t>("max_tokens");
    if (p.max_tokens < 1) throw std::invalid_argument("field max_tokens is out of range");
    p.sampling = read_sampling(Reader(r.object("sampling")));
    const json& stop = doc.at("stop");
    if (!stop.is_array()) throw std::invalid_argument("field stop is not an array");
    for (const json& s : stop) {
      if (!s.is_string() || s.get<std::string>().empty())
        throw std::invalid_argument("field stop holds a value that is not a stop string");
      p.stop.push_back(s.get<std::string>());
    }
    w.arrived_unix_ms = r.get<std::int64_t>("arrived_unix_ms");
    w.deadline_unix_ms = r.optional<std::int64_t>("deadline_unix_ms");
    p.keep_alive_ms = r.optional<std::int64_t>("keep_alive_ms");
    p.top_logprobs = r.optional<std::int32_t>("top_logprobs");
    if (p.top_logprobs && (*p.top_logprobs < 0 || *p.top_logprobs > 20))
      throw std::invalid_argument("field top_logprobs is out of range");
    p.n = r.optional<std::int32_t>("n").value_or(1);
    if (p.n < 1 || p.n > kMaxChoices) throw std::invalid_argument("field n is out of range");
    w.reply_to = r.get<std::string>("reply_to");
    if (w.id.empty() || w.request.model.empty() || w.reply_to.empty())
      throw std::invalid_argument("id, model and reply_to must not be empty");
    return w;
  });
}

namespace {

struct EventData {
  json operator()(const QueuedEvent& e) const { return {{"position", e.position}, {"queue_depth", e.queue_depth}}; }
  json operator()(const PingEvent&) const { return json::object(); }
  json operator()(const LoadingEvent& e) const {
    return {{"model", e.model}, {"waited_ms", e.waited_ms}};
  }
  json operator()(const RequeuedEvent& e) const {
    return {{"attempt", e.attempt}, {"reason", e.reason}};
  }
  json operator()(const StartedEvent& e) const {
    return {{"worker", e.worker}, {"queue_ms", e.queue_ms}, {"attempt", e.attempt}};
  }
  json operator()(const TokenEvent& e) const {
    json out{{"i", e.index}, {"text", e.text}};
    if (e.choice != 0) out["c"] = e.choice;
    if (!e.logprobs.empty()) {
      json& entries = out["logprobs"] = json::array();
      for (const LogprobEntry& entry : e.logprobs) entries.push_back(json(logprob_json(entry)));
    }
    return out;
  }
  json operator()(const EmbeddingEvent& e) const {
    return {{"index", e.index}, {"embedding", e.embedding}};
  }
  json operator()(const DoneEvent& e) const {
    json out{{"finish_reason", e.finish_reason},
            {"prompt_tokens", e.usage.prompt_tokens},
            {"completion_tokens", e.usage.completion_tokens},
            {"cached_tokens", e.usage.cached_tokens},
            {"queue_ms", e.timings.queue_ms},
            {"ttft_ms", e.timings.ttft_ms},
            {"total_ms", e.timings.total_ms},
            {"decode_tokens_per_s", e.timings.decode_tokens_per_s}};
    if (!e.choice_finish_reasons.empty()) out["choice_finish_reasons"] = e.choice_finish_reasons;
    return out;
  }
  json operator()(const ErrorEvent& e) const { return {{"code", e.code}, {"message", e.message}}; }
};

JobEvent read_event(const std::string& name, const Reader& d) {
  if (name == "loading") return LoadingEvent{d.get<std::string>("model"), d.get<std::int64_t>("waited_ms")};
  if (name == "requeued") return RequeuedEvent{d.get<int>("attempt"), d.get<std::string>("reason")};
  if (name == "started")
    return StartedEvent{d.get<std::string>("worker"), d.get<std::int64_t>("queue_ms"), d.get<int>("attempt")};
  if (name == "token") {
    TokenEvent e{d.get<std::int64_t>("i"), d.get<std::string>("text"), {}, {},
                 d.optional<std::int32_t>("c").value_or(0)};
    if (e.choice < 0 || e.choice >= kMaxChoices) throw std::invalid_argument("field c is out of range");
    if (const json* entries = d.find("logprobs")) {
      if (!entries->is_array()) throw std::invalid_argument("field logprobs is not an array");
      for (const json& entry : *entries) e.logprobs.push_back(logprob_from_json(entry));
    }
    return e;
  }
  if (name == "embedding") {
    EmbeddingEvent e{d.get<std::int32_t>("index"), {}};
    const json* values = d.find("embedding");
    if (e.index < 0 || e.index >= kMaxEmbedInputs) throw std::invalid_argument("field index is out of range");
    if (values == nullptr || !values->is_array()) throw std::invalid_argument("field embedding is not an array");
    e.embedding.reserve(values->size());
    for (const json& v : *values) {
      if (!v.is_number()) throw std::invalid_argument("field embedding holds a value that is not a number");
      e.embedding.push_back(v.get<float>());
    }
    return e;
  }
  if (name == "done") {
    DoneEvent e;
    e.finish_reason = d.get<std::string>("finish_reason");
    e.usage = {d.get<std::int64_t>("prompt_tokens"), d.get<std::int64_t>("completion_tokens"),
               d.get<std::int64_t>("cached_tokens")};
    e.timings = {d.get<std::int64_t>("queue_ms"), d.get<std::int64_t>("ttft_ms"),
                 d.get<std::int64_t>("total_ms"), d.get<double>("decode_tokens_per_s")};
    if (const json* reasons = d.find("choice_finish_reasons")) {
      if (!reasons->is_array() || reasons->size() > static_cast<std::size_t>(kMaxChoices))
        throw std::invalid_argument("field choice_finish_reasons is not an array of reasons");
      for (const json& reason : *reasons) {
        if (!reason.is_string()) throw std::invalid_argument("field choice_finish_reasons holds a non-string");
        e.choice_finish_reasons.push_back(reason.get<std::string>());
      }
    }
    return e;
  }
  if (name == "error") return ErrorEvent{d.get<std::string>("code"), d.get<std::string>("message")};
  throw std::invalid_argument("event " + name + " does not travel from a worker");
}

}  // namespace

std::string encode_event(const WireEvent& e) {
  const json out{{"id", e.job_id},
                 {"attempt", e.attempt},
                 {"seq", e.seq},
                 {"worker", e.worker},
                 {"event", event_name(e.event)},
                 {"data", std::visit(EventData{}, e.event)}};
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::variant<WireEvent, std::string> decode_event(std::string_view bytes) {
  return decoded(bytes, [](const json& doc) {
    const Reader r(doc);
    WireEvent e;
    e.job_id = r.get<std::string>("id");
    e.attempt = r.get<int>("attempt");
    e.seq = r.get<std::int64_t>("seq");
    e.worker = r.get<std::string>("worker");
    if (e.attempt < 1 || e.seq < 0) throw std::invalid_argument("attempt or seq out of range");
    e.event = read_event(r.get<std::string>("event"), Reader(r.object("data")));
    return e;
  });
}

}  // namespace llmq
