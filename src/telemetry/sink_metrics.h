// The document sink's metrics, read when scraped: what waits in the spool, what the spool's size
// cap deleted, and, when documents go to Elasticsearch, how each one ended and how many batches
// failed. Together they tell an operator whether telemetry is keeping up or backing up, and
// whether anything was ever lost (observability.md lists them).
#pragma once

#include <memory>

#include "telemetry/event_sink.h"
#include "telemetry/metrics.h"
#include "telemetry/refusal_documents.h"

namespace llmq::telemetry {

// A collector over `sink` (an ElasticSink or a SpoolSink; another kind gives an empty
// exposition), and over the refusals left without a document, when given. Both must outlive the
// registry the collector is added to.
std::unique_ptr<Collector> sink_collector(const EventSink& sink,
                                          const RefusalDocuments* refusals = nullptr);

}  // namespace llmq::telemetry
