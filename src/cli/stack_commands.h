// The Elastic Stack subcommands: `llmq elastic setup`, `llmq elastic replay`,
// `llmq kibana setup`. Each prints what it did on stdout, a failure as one line on stderr
// ("llmq: ..."), and returns the exit code (0 done, 1 failed).
#pragma once

#include "cli/config.h"
#include "telemetry/elastic_client.h"
#include "telemetry/elastic_sink.h"

namespace llmq {

int run_elastic_setup(const ElasticSetupConfig& config);
int run_elastic_replay(const ElasticReplayConfig& config);
int run_kibana_setup(const KibanaSetupConfig& config);

// The client settings for the URL and credentials of a command's flags.
telemetry::ElasticConfig elastic_config(const ElasticAccess& access);

// The sink options serve and replay share: the spool directory and, beside it, the dead-letter
// file; with `setup`, the index templates are installed and the data streams of
// `stream_namespace` created before the first document is shipped.
telemetry::ElasticSinkOptions elastic_sink_options(const ElasticAccess& access,
                                                   const std::string& spool_dir, bool setup,
                                                   const std::string& stream_namespace);

}  // namespace llmq
