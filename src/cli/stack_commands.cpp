#include "cli/stack_commands.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "telemetry/index_templates.h"
#include "telemetry/kibana_import.h"

namespace llmq {
namespace {

int fail(const std::string& message) {
  std::cerr << "llmq: " << message << '\n';
  return 1;
}

// Replay ships documents to the streams named in them: it creates none of its own.
ElasticSetupConfig setup_of(const ElasticReplayConfig& replay) {
  ElasticSetupConfig setup;
  static_cast<ElasticAccess&>(setup) = replay;
  setup.elastic_namespace.clear();
  return setup;
}

}  // namespace

telemetry::ElasticConfig elastic_config(const ElasticAccess& access) {
  telemetry::ElasticConfig config;
  config.url = access.elastic_url;
  config.api_key = access.elastic_api_key;
  config.username = access.elastic_user;
  config.password = access.elastic_password;
  config.ca_file = access.elastic_ca_file;
  return config;
}

telemetry::ElasticSinkOptions elastic_sink_options(const ElasticAccess& access,
                                                   const std::string& spool_dir, bool setup,
                                                   const std::string& stream_namespace) {
  telemetry::ElasticSinkOptions options;
  options.elastic = elastic_config(access);
  options.spool = telemetry::SpoolOptions{.dir = spool_dir};
  std::filesystem::path dir(spool_dir);
  if (!dir.has_filename()) dir = dir.parent_path();  // "…/spool/": the same directory
  options.dead_letter_path = dir.parent_path() / "dead-letter.ndjson";
  if (setup) {
    options.prepare = [stream_namespace](telemetry::ElasticClient& client) {
      try {
        for (const std::string& line : telemetry::install_index_templates(client, {}))
          spdlog::info("elasticsearch: {}", line);
        for (const std::string& line : telemetry::create_data_streams(client, stream_namespace))
          spdlog::info("elasticsearch: {}", line);
        return true;
      } catch (const telemetry::SetupError& e) {
        spdlog::warn("elasticsearch: cannot set up the index templates and data streams yet: {}",
                     e.what());
        return false;
      }
    };
  }
  return options;
}

int run_elastic_setup(const ElasticSetupConfig& config) {
  telemetry::ElasticClient client(elastic_config(config));
  try {
    const telemetry::TemplateOptions options{.requests_retention = config.requests_retention,
                                             .runtime_retention = config.runtime_retention};
    for (const std::string& line : telemetry::install_index_templates(client, options))
      std::cout << line << '\n';
    if (!config.elastic_namespace.empty()) {
      for (const std::string& line : telemetry::create_data_streams(client, config.elastic_namespace))
        std::cout << line << '\n';
    }
  } catch (const telemetry::SetupError& e) {
    return fail(e.what());
  }
  return 0;
}

int run_elastic_replay(const ElasticReplayConfig& config) {
  std::error_code error;
  if (!std::filesystem::is_directory(config.spool_dir, error))
    return fail("no spool directory at " + config.spool_dir);
  if (config.elastic_setup) {
    if (const int code = run_elastic_setup(setup_of(config)); code != 0) return code;
  }
  std::unique_ptr<telemetry::ElasticSink> sink;
  try {
    telemetry::ElasticSinkOptions options =
        elastic_sink_options(config, config.spool_dir, /*setup=*/false, /*stream_namespace=*/"");
    options.backoff_max = std::chrono::milliseconds(5000);  // a command waits; keep trying often
    sink = std::make_unique<telemetry::ElasticSink>(std::move(options));
  } catch (const std::exception& e) {
    return fail("cannot use spool directory " + config.spool_dir + ": " + e.what());
  }
  const std::uint64_t spooled = sink->spool().documents();
  const bool done = sink->flush(std::chrono::steady_clock::now() +
                                std::chrono::milliseconds(config.timeout_ms));
  const telemetry::ElasticSinkStats stats = sink->stats();
  const std::uint64_t left = sink->spool().documents();
  sink->close();
  std::cout << "replayed " << config.spool_dir << ": " << spooled << " documents spooled, "
            << stats.stored << " stored (already stored ones included), " << stats.dead_lettered
            << " dead-lettered, " << left << " left" << '\n';
  if (!done)
    return fail(std::to_string(left) + " documents are still in " + config.spool_dir +
                " after " + std::to_string(config.timeout_ms) +
                " ms (Elasticsearch unreachable or refusing them; see the log); run replay again");
  return 0;
}

int run_kibana_setup(const KibanaSetupConfig& config) {
  telemetry::KibanaImportOptions options;
  options.kibana.url = config.kibana_url;
  options.kibana.api_key = config.kibana_api_key;
  options.kibana.username = config.kibana_user;
  options.kibana.password = config.kibana_password;
  options.kibana.ca_file = config.kibana_ca_file;
  options.kibana.request_timeout = std::chrono::milliseconds(60000);  // imports can be slow
  options.space = config.space;
  try {
    std::cout << telemetry::import_kibana_objects(options) << '\n';
  } catch (const telemetry::SetupError& e) {
    return fail(e.what());
  }
  return 0;
}

}  // namespace llmq
