#include "telemetry/request_document.h"

#include <gtest/gtest.h>

namespace llmq::telemetry {
namespace {

using namespace std::chrono;

const DocumentOrigin kOrigin{"llmq-test", "box1"};

system_clock::time_point at_ms(std::int64_t ms) { return system_clock::time_point(milliseconds(ms)); }

TEST(RequestDocument, Iso8601IsUtcWithMilliseconds) {
  EXPECT_EQ(iso8601_ms(at_ms(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso8601_ms(at_ms(1795000000123)), "2026-11-18T11:06:40.123Z");
}

TEST(RequestDocument, CompletedRequestHasEcsAndLlmqFields) {
  RequestRecord r;
  r.request_id = "req_1";
  r.at = at_ms(1000);
  r.duration = milliseconds(250);
  r.status = 200;
  r.route = "/api/v1/req";
  r.model = "smol";
  r.success = true;
  r.finish_reason = "stop";
  r.worker = "box1/42";
  r.attempts = 1;
  r.queue_ms = 3;
  r.ttft_ms = 20;
  r.total_ms = 250;
  r.prompt_tokens = 7;
  r.generated_tokens = 16;
  r.cached_tokens = 5;
  r.user = "end-user-9";
  r.decode_tokens_per_s = 80.5;
  const nlohmann::json d = request_document(r, kOrigin);
  EXPECT_EQ(d["@timestamp"], "1970-01-01T00:00:01.000Z");
  EXPECT_EQ(d["event"]["outcome"], "success");
  EXPECT_EQ(d["event"]["duration"], 250000000);
  EXPECT_EQ(d["http"]["response"]["status_code"], 200);
  EXPECT_EQ(d["service"]["name"], "llmq-test");
  EXPECT_EQ(d["host"]["name"], "box1");
  const nlohmann::json& l = d["llmq"];
  EXPECT_EQ(l["request_id"], "req_1");
  EXPECT_EQ(l["model"], "smol");
  EXPECT_EQ(l["route"], "/api/v1/req");
  EXPECT_EQ(l["worker"], "box1/42");
  EXPECT_EQ(l["attempts"], 1);
  EXPECT_EQ(l["finish_reason"], "stop");
  EXPECT_EQ(l["queue_ms"], 3);
  EXPECT_EQ(l["ttft_ms"], 20);
  EXPECT_EQ(l["total_ms"], 250);
  EXPECT_EQ(l["tokens"]["prompt"], 7);
  EXPECT_EQ(l["tokens"]["generated"], 16);
  EXPECT_EQ(l["tokens"]["cached"], 5);
  EXPECT_EQ(l["user"], "end-user-9");
  EXPECT_DOUBLE_EQ(l["decode_tokens_per_s"].get<double>(), 80.5);
  EXPECT_FALSE(l.contains("rejection_reason"));
}

TEST(RequestDocument, RefusalLeavesOutWhatNeverHappened) {
  RequestRecord r;
  r.request_id = "req_2";
  r.status = 429;
  r.rejection_reason = "queue_full";
  const nlohmann::json d = request_document(r, kOrigin);
  EXPECT_EQ(d["event"]["outcome"], "failure");
  EXPECT_EQ(d["http"]["response"]["status_code"], 429);
  EXPECT_EQ(d["llmq"]["rejection_reason"], "queue_full");
  EXPECT_EQ(d["llmq"]["attempts"], 0);
  for (const char* absent : {"worker", "finish_reason", "queue_ms", "ttft_ms", "tokens", "model", "user"})
    EXPECT_FALSE(d["llmq"].contains(absent)) << absent;
}

TEST(RequestDocument, ClientGoneBeforeAnyStatusHasNoHttpField) {
  RequestRecord r;
  r.request_id = "req_3";
  EXPECT_FALSE(request_document(r, kOrigin).contains("http"));
}

TEST(RuntimeDocument, FieldsAndStableId) {
  RuntimeSnapshot s;
  s.at = at_ms(2500);
  s.queue_depth = 2;
  s.slots_busy = 1;
  s.slots_total = 4;
  s.p95_ms = 120;
  s.tokens_per_s = 33.5;
  s.resources.process_rss_bytes = 1e8;
  s.resources.host_cpu_pct = 12.5;
  const nlohmann::json d = runtime_document(s, kOrigin);
  EXPECT_EQ(d["@timestamp"], "1970-01-01T00:00:02.500Z");
  EXPECT_EQ(d["host"]["name"], "box1");
  EXPECT_EQ(d["host"]["cpu"]["pct"], 12.5);
  EXPECT_EQ(d["llmq"]["queue"]["depth"], 2);
  EXPECT_EQ(d["llmq"]["slots"]["busy"], 1);
  EXPECT_EQ(d["llmq"]["slots"]["total"], 4);
  EXPECT_EQ(d["llmq"]["latency"]["p95_ms"], 120);
  EXPECT_FALSE(d["llmq"]["latency"].contains("p50_ms"));
  EXPECT_EQ(d["llmq"]["tokens_per_s"], 33.5);
  EXPECT_EQ(d["process"]["memory"]["rss_bytes"], 1e8);
  EXPECT_FALSE(d["process"]["cpu"].contains("pct"));
  EXPECT_EQ(runtime_document_id(s, kOrigin), "llmq-test/box1/1970-01-01T00:00:02.500Z");
}

}  // namespace
}  // namespace llmq::telemetry
