#include "telemetry/sink_metrics.h"

#include <cstdint>
#include <string>

#include "telemetry/elastic_sink.h"
#include "telemetry/spool_sink.h"

namespace llmq::telemetry {
namespace {

void value_line(std::string& out, const std::string& series, std::uint64_t v) {
  out += series + ' ' + expo::format_value(static_cast<double>(v)) + '\n';
}

void metric(std::string& out, const char* name, const char* help, const char* type,
            std::uint64_t v) {
  expo::header(out, name, help, type);
  value_line(out, name, v);
}

class SinkCollector final : public Collector {
 public:
  SinkCollector(const Spool* spool, const ElasticSink* elastic, const RefusalDocuments* refusals)
      : spool_(spool), elastic_(elastic), refusals_(refusals) {}

  void collect(std::string& out) const override {
    if (refusals_) {
      metric(out, "llmq_request_documents_omitted_total",
             "Refusals left without a request document of their own past the per-reason document "
             "rate (each counted in llmq_requests_rejected_total and in the next document's "
             "llmq.refusals_omitted).",
             "counter", refusals_->omitted_total());
    }
    if (spool_) {
      metric(out, "llmq_spool_documents", "Documents in the spool, waiting to be shipped.", "gauge",
             spool_->documents());
      metric(out, "llmq_spool_bytes", "Bytes of the spool's segments on disk.", "gauge",
             spool_->bytes());
      metric(out, "llmq_spool_dropped_documents_total",
             "Documents deleted unshipped because the spool reached its size cap.", "counter",
             spool_->dropped_documents());
    }
    if (!elastic_) return;
    const ElasticSinkStats s = elastic_->stats();
    const std::string outcomes = "llmq_elastic_documents_total";
    expo::header(out, outcomes, "Documents by how their delivery to Elasticsearch ended.", "counter");
    value_line(out, outcomes + "{outcome=\"stored\"}", s.stored);
    value_line(out, outcomes + "{outcome=\"dead_lettered\"}", s.dead_lettered);
    value_line(out, outcomes + "{outcome=\"lost\"}", s.lost);
    metric(out, "llmq_elastic_spooled_documents_total",
           "Documents written to the spool: overflow of the in-memory queue or a failed batch.",
           "counter", s.spooled);
    metric(out, "llmq_elastic_failed_batches_total",
           "Bulk requests Elasticsearch did not take (network error, timeout, 429, 5xx).", "counter",
           s.failed_batches);
  }

 private:
  const Spool* spool_;
  const ElasticSink* elastic_;
  const RefusalDocuments* refusals_;
};

}  // namespace

std::unique_ptr<Collector> sink_collector(const EventSink& sink, const RefusalDocuments* refusals) {
  if (const auto* elastic = dynamic_cast<const ElasticSink*>(&sink))
    return std::make_unique<SinkCollector>(&elastic->spool(), elastic, refusals);
  if (const auto* spool = dynamic_cast<const SpoolSink*>(&sink))
    return std::make_unique<SinkCollector>(&spool->spool(), nullptr, refusals);
  return std::make_unique<SinkCollector>(nullptr, nullptr, refusals);
}

}  // namespace llmq::telemetry
