#include "queue/wire.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace llmq {
namespace {

WorkItem sample_work() {
  WorkItem w;
  w.id = "req_1";
  w.request.model = "SmolLM2";
  w.request.prompt_tokens = {1, 42, 7};
  w.request.params.max_tokens = 33;
  w.request.params.sampling.temperature = 0.5;
  w.request.params.sampling.top_k = 20;
  w.request.params.sampling.seed = 4000000000u;
  w.request.params.stop = {"\n\n", "END"};
  w.arrived_unix_ms = 1764633600123;
  w.deadline_unix_ms = 1764633660123;
  w.reply_to = "llmq.events.gw1";
  w.request.params.keep_alive_ms = -1;
  w.request.params.sampling.grammar = "root ::= \"yes\" | \"no\"";
  w.request.params.top_logprobs = 3;
  return w;
}

TEST(Wire, WorkRoundTripsEveryFieldAWorkerUses) {
  const WorkItem w = sample_work();
  auto decoded = decode_work(encode_work(w));
  ASSERT_TRUE(std::holds_alternative<WorkItem>(decoded)) << std::get<std::string>(decoded);
  const WorkItem& d = std::get<WorkItem>(decoded);
  EXPECT_EQ(d.id, w.id);
  EXPECT_EQ(d.request.model, w.request.model);
  EXPECT_EQ(d.request.prompt_tokens, w.request.prompt_tokens);
  EXPECT_EQ(d.request.params.max_tokens, 33);
  EXPECT_EQ(d.request.params.sampling.temperature, 0.5);
  EXPECT_EQ(d.request.params.sampling.top_k, 20);
  EXPECT_EQ(d.request.params.sampling.top_p, std::nullopt);
  EXPECT_EQ(d.request.params.sampling.seed, 4000000000u);
  EXPECT_EQ(d.request.params.stop, w.request.params.stop);
  EXPECT_EQ(d.arrived_unix_ms, w.arrived_unix_ms);
  EXPECT_EQ(d.deadline_unix_ms, w.deadline_unix_ms);
  EXPECT_EQ(d.request.params.keep_alive_ms, -1);
  EXPECT_EQ(d.request.params.sampling.grammar, w.request.params.sampling.grammar);
  EXPECT_EQ(d.request.params.top_logprobs, 3);
  EXPECT_EQ(d.reply_to, w.reply_to);
}

TEST(Wire, MalformedWorkIsRefusedWithTheReason) {
  auto reason = [](const std::string& bytes) {
    auto decoded = decode_work(bytes);
    return std::holds_alternative<std::string>(decoded) ? std::get<std::string>(decoded) : "(accepted)";
  };
  EXPECT_NE(reason("not json"), "(accepted)");
  EXPECT_EQ(reason("[1,2]"), "not a JSON object");
  nlohmann::json good = nlohmann::json::parse(encode_work(sample_work()));
  auto with = [&](const char* field, nlohmann::json value) {
    nlohmann::json j = good;
    if (value.is_discarded()) j.erase(field); else j[field] = value;
    return reason(j.dump());
  };
  EXPECT_EQ(with("prompt_tokens", nlohmann::json::array()), "field prompt_tokens is not a non-empty array");
  EXPECT_EQ(with("prompt_tokens", {1, -3}), "field prompt_tokens holds a value that is not a token");
  EXPECT_EQ(with("max_tokens", 0), "field max_tokens is out of range");
  EXPECT_EQ(with("max_tokens", "9"), "field max_tokens has the wrong type");
  EXPECT_EQ(with("max_tokens", 1LL << 40), "field max_tokens is out of range");
  EXPECT_EQ(with("id", nlohmann::json(nlohmann::json::value_t::discarded)), "missing field id");
  EXPECT_EQ(with("v", 2), "unknown version");
  EXPECT_EQ(with("stop", {""}), "field stop holds a value that is not a stop string");
  EXPECT_EQ(with("top_logprobs", 21), "field top_logprobs is out of range");
}

TEST(Wire, EventsRoundTrip) {
  const std::vector<JobEvent> events = {
      LoadingEvent{"gemma", 40}, RequeuedEvent{2, "worker_lost"}, StartedEvent{"host/1", 12, 2}, TokenEvent{5, "h\xc3\xa9", {}, {}},
      // A token's bytes travel exactly, a lone byte of a split character too.
      TokenEvent{6, "\xc3\xa9", {}, {{"\xc3", -0.5, {{"\xc3", -0.5}, {"a", -3.25}}}, {"\xa9", -0.125, {}}}},
      DoneEvent{"length", {3, 4, 1}, {10, 20, 30, 40.5}}, ErrorEvent{"deadline_exceeded", "late"}};
  std::int64_t seq = 0;
  for (const JobEvent& event : events) {
    auto decoded = decode_event(encode_event({"req_9", 2, seq, "host/7", event}));
    ASSERT_TRUE(std::holds_alternative<WireEvent>(decoded)) << std::get<std::string>(decoded);
    const WireEvent& e = std::get<WireEvent>(decoded);
    EXPECT_EQ(e.job_id, "req_9");
    EXPECT_EQ(e.attempt, 2);
    EXPECT_EQ(e.seq, seq++);
    EXPECT_EQ(e.worker, "host/7");
    EXPECT_EQ(event_json(e.event), event_json(event));
  }
}

TEST(Wire, ChoicesTravelWithTheirIndexAndFinishReasons) {
  WorkItem w = sample_work();
  w.request.params.n = 3;
  auto work = decode_work(encode_work(w));
  ASSERT_TRUE(std::holds_alternative<WorkItem>(work)) << std::get<std::string>(work);
  EXPECT_EQ(std::get<WorkItem>(work).request.params.n, 3);
  EXPECT_EQ(std::get<WorkItem>(decode_work(encode_work(sample_work()))).request.params.n, 1);

  auto token = decode_event(encode_event({"req_9", 1, 0, "w", TokenEvent{4, "hi", {}, {}, 2}}));
  ASSERT_TRUE(std::holds_alternative<WireEvent>(token)) << std::get<std::string>(token);
  const auto& t = std::get<TokenEvent>(std::get<WireEvent>(token).event);
  EXPECT_EQ(t.choice, 2);
  EXPECT_EQ(t.index, 4);
  DoneEvent done{"stop", {3, 9, 0}, {1, 2, 3, 4.0}, {"stop", "length", "stop"}};
  auto ended = decode_event(encode_event({"req_9", 1, 1, "w", done}));
  ASSERT_TRUE(std::holds_alternative<WireEvent>(ended)) << std::get<std::string>(ended);
  EXPECT_EQ(std::get<DoneEvent>(std::get<WireEvent>(ended).event).choice_finish_reasons,
            done.choice_finish_reasons);

  nlohmann::json bad = nlohmann::json::parse(encode_work(w));
  bad["n"] = 9;
  EXPECT_TRUE(std::holds_alternative<std::string>(decode_work(bad.dump())));
}

TEST(Wire, EmbeddingWorkAndVectorsRoundTrip) {
  WorkItem w = sample_work();
  w.request.prompt_tokens.clear();
  w.request.embed_tokens = {{5, 6}, {7}};
  auto decoded = decode_work(encode_work(w));
  ASSERT_TRUE(std::holds_alternative<WorkItem>(decoded)) << std::get<std::string>(decoded);
  EXPECT_EQ(std::get<WorkItem>(decoded).request.embed_tokens, w.request.embed_tokens);
  EXPECT_TRUE(std::get<WorkItem>(decoded).request.prompt_tokens.empty());
  const EmbeddingEvent vector{1, {0.25F, -0.5F, 1e-7F}};
  auto event = decode_event(encode_event({"req_9", 1, 3, "w", vector}));
  ASSERT_TRUE(std::holds_alternative<WireEvent>(event)) << std::get<std::string>(event);
  const auto& got = std::get<EmbeddingEvent>(std::get<WireEvent>(event).event);
  EXPECT_EQ(got.index, 1);
  EXPECT_EQ(got.embedding, vector.embedding);  // floats survive JSON exactly
  nlohmann::json bad = nlohmann::json::parse(encode_event({"req_9", 1, 3, "w", vector}));
  bad["data"]["index"] = -1;
  EXPECT_TRUE(std::holds_alternative<std::string>(decode_event(bad.dump())));
}

TEST(Wire, EventsAWorkerNeverSendsAreRefused) {
  auto decoded = decode_event(encode_event({"req_9", 1, 0, "w", QueuedEvent{"req_9", 1, 2}}));
  ASSERT_TRUE(std::holds_alternative<std::string>(decoded));
  EXPECT_EQ(std::get<std::string>(decoded), "event queued does not travel from a worker");
}

}  // namespace
}  // namespace llmq
