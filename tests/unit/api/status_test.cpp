// The live status (api/status.h): its JSON from given inputs, what ServiceStatus gathers from a
// real queue, and the page's Content-Security-Policy (api/status_page.h).
#include "api/status.h"

#include <gtest/gtest.h>

#include "api/status_page.h"
#include "queue/in_process_queue.h"

namespace llmq {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class NullSink final : public JobSink {
 public:
  void on_event(JobEvent) override {}
};

JobPtr job_with_prompt(const std::string& id, const std::string& prompt) {
  ValidatedRequest request;
  request.model = "m";
  request.params.prompt = prompt;
  request.prompt_tokens = {1, 2, 3};
  return std::make_shared<Job>(id, std::move(request), std::nullopt, std::make_shared<NullSink>());
}

StatusInputs sample_inputs() {
  StatusInputs in;
  in.now = Clock::now();
  in.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764672000123));
  in.uptime_s = 42.26;
  in.version = "1.2.3";
  in.ready = true;
  in.models = {{"smol", true}, {"gemma", false}};
  in.depth = 2;
  in.capacity = 64;
  in.waiting = {{"req_a", "smol", 0, in.now - 1500ms}, {"req_b", "smol", 1, in.now - 250ms}};
  in.slots = local_slots({SlotView{.slot = 0, .model = "smol", .state = "generating",
                                   .job_id = "req_z", .tokens = 12, .tokens_per_s = 40.04,
                                   .started = in.now - 2s},
                          SlotView{.slot = 1, .model = "smol"}});
  in.latency = {.window_s = 60, .count = 3, .ttft_p50_ms = 95, .ttft_p95_ms = 180.04,
                .total_p50_ms = 2410, .total_p95_ms = 3000};
  in.refusals = {{"queue_full", 4}, {"unauthorized", 0}};
  in.cpu_percent = 151.26;
  in.rss_bytes = 123456789;
  return in;
}

TEST(StatusJson, CarriesEveryDocumentedField) {
  const json s = status_json(sample_inputs());
  EXPECT_EQ(s["time"], "2025-12-02T10:40:00.123Z");
  EXPECT_DOUBLE_EQ(s["uptime_s"].get<double>(), 42.3);
  EXPECT_EQ(s["version"], "1.2.3");
  EXPECT_EQ(s["ready"], true);
  EXPECT_EQ(s["draining"], false);
  EXPECT_EQ(s["models"], json::parse(R"([{"name":"smol","loaded":true},{"name":"gemma","loaded":false}])"));
  EXPECT_EQ(s["queue"]["name"], "LLM_INFERENCE");
  EXPECT_EQ(s["queue"]["depth"], 2);
  EXPECT_EQ(s["queue"]["capacity"], 64);
  EXPECT_EQ(s["queue"]["waiting_truncated"], false);
  EXPECT_EQ(s["slots"]["busy"], 1);
  EXPECT_EQ(s["slots"]["total"], 2);
  EXPECT_TRUE(s["slots"]["workers"].is_null());
  EXPECT_EQ(s["latency"], json::parse(R"({"window_s":60.0,"count":3,
      "ttft_ms":{"p50":95.0,"p95":180.0},"total_ms":{"p50":2410.0,"p95":3000.0}})"));
  EXPECT_EQ(s["refusals"], json::parse(R"({"queue_full":4,"unauthorized":0})"));
  EXPECT_DOUBLE_EQ(s["process"]["cpu_percent"].get<double>(), 151.3);
  EXPECT_EQ(s["process"]["rss_bytes"], 123456789.0);
}

TEST(StatusJson, ListsWaitingJobsWithPlaceAndAgeOnly) {
  const json waiting = status_json(sample_inputs())["queue"]["waiting"];
  ASSERT_EQ(waiting.size(), 2u);
  EXPECT_EQ(waiting[0]["id"], "req_a");
  EXPECT_EQ(waiting[0]["model"], "smol");
  EXPECT_EQ(waiting[0]["place"], 0);
  EXPECT_EQ(waiting[0]["age_ms"], 1500);
  EXPECT_EQ(waiting[1]["place"], 1);
  EXPECT_EQ(waiting[1]["age_ms"], 250);
  for (const json& job : waiting) EXPECT_EQ(job.size(), 4u) << job.dump();
}

TEST(StatusJson, ShowsBusyAndIdleSlots) {
  const json list = status_json(sample_inputs())["slots"]["list"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0], json::parse(R"({"slot":0,"model":"smol","state":"generating","id":"req_z",
      "tokens":12,"tokens_per_s":40.0,"running_ms":2000})"));
  EXPECT_EQ(list[1], json::parse(R"({"slot":1,"model":"smol","state":"idle","id":null,
      "tokens":0,"tokens_per_s":null,"running_ms":null})"));
}

TEST(StatusJson, UnknownValuesAreNull) {
  StatusInputs in;
  const json s = status_json(in);
  EXPECT_TRUE(s["slots"].is_null());
  EXPECT_TRUE(s["latency"]["ttft_ms"]["p50"].is_null());
  EXPECT_TRUE(s["latency"]["total_ms"]["p95"].is_null());
  EXPECT_TRUE(s["process"]["cpu_percent"].is_null());
  EXPECT_TRUE(s["process"]["rss_bytes"].is_null());
  EXPECT_EQ(s["models"], json::array());
  EXPECT_EQ(s["queue"]["waiting"], json::array());
}

TEST(ServiceStatus, ListsTheQueueWithoutPromptsAndCapsTheList) {
  InProcessQueue queue(500);
  for (std::size_t i = 0; i < kStatusWaitingLimit + 5; ++i) {
    ASSERT_EQ(queue.push(job_with_prompt("req_" + std::to_string(i), "SECRET PROMPT")),
              PushResult::accepted);
  }
  ServiceStatus status(StatusSources{});
  const json s = status.snapshot(queue, nullptr, false);
  EXPECT_EQ(s["queue"]["depth"], kStatusWaitingLimit + 5);
  EXPECT_EQ(s["queue"]["waiting"].size(), kStatusWaitingLimit);
  EXPECT_EQ(s["queue"]["waiting_truncated"], true);
  EXPECT_EQ(s["queue"]["waiting"][0]["id"], "req_0");
  EXPECT_EQ(s["ready"], false);
  EXPECT_EQ(s.dump().find("SECRET"), std::string::npos);
  EXPECT_TRUE(s["slots"].is_null()) << "no slot source: not known here";
}

TEST(ServiceStatus, LatencyWindowTakesCompletedJobsOnly) {
  InProcessQueue queue(1);
  ServiceStatus status(StatusSources{});
  telemetry::RequestRecord done;
  done.finish_reason = "stop";
  done.ttft_ms = 100;
  done.total_ms = 1000;
  status.observe(done);
  telemetry::RequestRecord refused;
  refused.rejection_reason = "queue_full";
  refused.total_ms = 1;
  status.observe(refused);
  const json latency = status.snapshot(queue, nullptr, false)["latency"];
  EXPECT_EQ(latency["count"], 1);
  EXPECT_NEAR(latency["ttft_ms"]["p50"].get<double>(), 100, 1.5);
  EXPECT_NEAR(latency["total_ms"]["p95"].get<double>(), 1000, 10.5);
  EXPECT_EQ(latency["window_s"], 60.0);
}

TEST(ServiceStatus, ReadsThisProcessAndTheSlotSource) {
  InProcessQueue queue(1);
  ServiceStatus status(StatusSources{
      .slots = [] { return local_slots({SlotView{.slot = 0, .model = "m"}}); }, .version = "9"});
  const json s = status.snapshot(queue, nullptr, true);
  EXPECT_EQ(s["draining"], true);
  EXPECT_EQ(s["version"], "9");
  EXPECT_EQ(s["slots"]["total"], 1);
  EXPECT_EQ(s["slots"]["busy"], 0);
  EXPECT_GT(s["process"]["rss_bytes"].get<double>(), 0);
  EXPECT_GE(s["process"]["cpu_percent"].get<double>(), 0);
}

TEST(StatusPage, PolicyAllowsThePagesOwnInlineScriptAndStyleByHash) {
  const std::string csp = status_page_csp("<html><style>a{}</style><script>x()</script></html>");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("script-src 'sha256-D6IGS8VMvCoyaR/l0h9tERrBTATY01CoPS7l6xDv0kI='"),
            std::string::npos) << csp;
  EXPECT_NE(csp.find("style-src 'sha256-X1RutGBrXCt9KkSaXMK7tHftWiRscFHOhxsS8tv8hBk='"),
            std::string::npos) << csp;
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos) << csp;
}

TEST(StatusPage, IsServedAsHtmlWithItsHeaders) {
  const http::Response res = status_page_response(true);
  EXPECT_EQ(res.result_int(), 200);
  EXPECT_EQ(res[boost::beast::http::field::content_type], "text/html; charset=utf-8");
  EXPECT_EQ(res["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(res[boost::beast::http::field::cache_control], "no-cache");
  EXPECT_NE(res["Content-Security-Policy"].find("script-src 'sha256-"), std::string::npos);
  EXPECT_NE(res.body().find("/api/v1/status"), std::string::npos);
  EXPECT_EQ(res.body().find("http://"), std::string::npos) << "nothing loaded from elsewhere";
  EXPECT_EQ(res.body().find("https://"), std::string::npos) << "nothing loaded from elsewhere";
}

}  // namespace
}  // namespace llmq
