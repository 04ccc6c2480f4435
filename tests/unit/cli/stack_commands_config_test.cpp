// The command lines of `llmq elastic setup|replay` and `llmq kibana setup`, switches (bool
// flags), and one config file shared by several commands.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "cli/config.h"

namespace llmq {
namespace {

using Env = std::map<std::string, std::string>;

std::string& last_stderr() {
  static std::string text;
  return text;
}

CommandLine parse(std::vector<std::string> args, Env env = {{"HOME", "/h"}}) {
  args.insert(args.begin(), "llmq");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  const EnvLookup lookup = [env = std::move(env)](const std::string& name) -> std::optional<std::string> {
    const auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  testing::internal::CaptureStderr();
  CommandLine result = parse_command_line(static_cast<int>(argv.size()), argv.data(), lookup);
  last_stderr() = testing::internal::GetCapturedStderr();
  return result;
}

template <class Config>
Config parsed(std::vector<std::string> args, Env env = {{"HOME", "/h"}}) {
  CommandLine result = parse(std::move(args), std::move(env));
  EXPECT_TRUE(std::holds_alternative<Config>(result)) << last_stderr();
  if (auto* config = std::get_if<Config>(&result)) return *config;
  return {};
}

std::string refused(std::vector<std::string> args, Env env = {{"HOME", "/h"}}) {
  CommandLine result = parse(std::move(args), std::move(env));
  EXPECT_TRUE(std::holds_alternative<ExitNow>(result));
  if (auto* exit = std::get_if<ExitNow>(&result)) {
    EXPECT_EQ(exit->code, 2);
  }
  return last_stderr();
}

std::string write_file(const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("llmq_stack_" + std::to_string(::getpid()) + "_" +
                     std::to_string(std::hash<std::string>{}(text)) + ".toml");
  std::ofstream(path) << text;
  return path.string();
}

TEST(ElasticSetupCommand, ParsesUrlAuthAndRetention) {
  const auto c = parsed<ElasticSetupConfig>(
      {"elastic", "setup", "--elastic-url", "http://es:9200", "--elastic-user", "u",
       "--requests-retention", "90d", "--runtime-retention", ""},
      {{"LLMQ_ELASTIC_PASSWORD", "pw"}});
  EXPECT_EQ(c.elastic_url, "http://es:9200");
  EXPECT_EQ(c.elastic_user, "u");
  EXPECT_EQ(c.elastic_password, "pw");
  EXPECT_EQ(c.requests_retention, "90d");
  EXPECT_EQ(c.runtime_retention, "");
}

TEST(ElasticSetupCommand, DefaultRetentions) {
  const auto c = parsed<ElasticSetupConfig>({"elastic", "setup"}, {{"LLMQ_ELASTIC_URL", "http://e"}});
  EXPECT_EQ(c.requests_retention, "30d");
  EXPECT_EQ(c.runtime_retention, "7d");
}

TEST(ElasticSetupCommand, CreatesTheStreamsOfServesNamespace) {
  EXPECT_EQ(parsed<ElasticSetupConfig>({"elastic", "setup"}, {{"LLMQ_ELASTIC_URL", "http://e"}})
                .elastic_namespace,
            "default");
  const auto c = parsed<ElasticSetupConfig>({"elastic", "setup", "--elastic-url", "http://e"},
                                            {{"LLMQ_ELASTIC_NAMESPACE", "prod_eu"}});
  EXPECT_EQ(c.elastic_namespace, "prod_eu");  // the same variable serve reads
  EXPECT_NE(refused({"elastic", "setup", "--elastic-url", "http://e", "--elastic-namespace", "Prod-EU"})
                .find("--elastic-namespace must be"),
            std::string::npos);
}

TEST(ElasticSetupCommand, RefusesWhatCannotWork) {
  EXPECT_NE(refused({"elastic", "setup"}).find("--elastic-url is required"), std::string::npos);
  for (const char* bad : {"30", "d", "0d", "30 days", "-1d", "1.5d"})
    EXPECT_NE(refused({"elastic", "setup", "--elastic-url", "http://e", "--requests-retention", bad})
                  .find("--requests-retention must be a duration"),
              std::string::npos)
        << bad;
  EXPECT_NE(refused({"elastic"}).find("'elastic' needs a subcommand: setup, replay"),
            std::string::npos);
  EXPECT_NE(refused({"elastic", "setup", "--model", "x"}).find("--model"), std::string::npos);
}

TEST(ElasticReplayCommand, SpoolDefaultsToServes) {
  const auto c = parsed<ElasticReplayConfig>({"elastic", "replay", "--elastic-url", "http://e"},
                                             {{"XDG_CACHE_HOME", "/c"}});
  EXPECT_EQ(c.spool_dir, "/c/llmq/spool");
  EXPECT_EQ(c.timeout_ms, 300000);
  EXPECT_FALSE(c.elastic_setup);
}

TEST(KibanaSetupCommand, ParsesUrlSpaceAndMasksSecrets) {
  const auto c = parsed<KibanaSetupConfig>({"kibana", "setup", "--kibana-url", "https://k:5601",
                                            "--space", "ops", "--kibana-api-key", "c2VjcmV0"});
  EXPECT_EQ(c.kibana_url, "https://k:5601");
  EXPECT_EQ(c.space, "ops");
  const std::string line = describe(c);
  EXPECT_EQ(line.find("c2VjcmV0"), std::string::npos) << line;
  EXPECT_NE(line.find("space=ops"), std::string::npos) << line;
  EXPECT_EQ(parsed<KibanaSetupConfig>({"kibana", "setup"}).kibana_url, "http://127.0.0.1:5601");
  for (const char* bad : {"a b", "a?x", "Ops", "a/b"})
    EXPECT_NE(refused({"kibana", "setup", "--space", bad}).find("--space must be a Kibana space id"),
              std::string::npos)
        << bad;
}

TEST(Switches, FlagAloneEnvironmentAndFile) {
  EXPECT_FALSE(parsed<ServeConfig>({"serve"}).elastic_setup);
  EXPECT_TRUE(parsed<ServeConfig>({"serve", "--elastic-setup"}).elastic_setup);
  for (const char* yes : {"1", "true", "TRUE", "yes", "on"})
    EXPECT_TRUE(parsed<ServeConfig>({"serve"}, {{"LLMQ_ELASTIC_SETUP", yes}}).elastic_setup) << yes;
  for (const char* no : {"0", "false", "no", "off"})
    EXPECT_FALSE(parsed<ServeConfig>({"serve"}, {{"LLMQ_ELASTIC_SETUP", no}}).elastic_setup) << no;
  EXPECT_NE(refused({"serve"}, {{"LLMQ_ELASTIC_SETUP", "maybe"}})
                .find("LLMQ_ELASTIC_SETUP=maybe: --elastic-setup must be true or false"),
            std::string::npos);
  const std::string file = write_file("elastic-setup = true\n");
  EXPECT_TRUE(parsed<ServeConfig>({"serve", "--config", file}).elastic_setup);
  const std::string wrong = write_file("elastic_setup = \"yes\"\n");
  EXPECT_NE(refused({"serve", "--config", wrong}).find("must be a boolean"), std::string::npos);
}

TEST(ServeCommand, ElasticNamespace) {
  EXPECT_EQ(parsed<ServeConfig>({"serve"}).elastic_namespace, "default");
  EXPECT_EQ(parsed<ServeConfig>({"serve", "--elastic-namespace", "prod_eu1"}).elastic_namespace,
            "prod_eu1");
  for (const char* bad : {"", "Prod", "a-b", "_x", "a b", "a*"})
    EXPECT_NE(refused({"serve", "--elastic-namespace", bad}).find("--elastic-namespace must be"),
              std::string::npos)
        << bad;
}

TEST(Switches, MetricsWindow) {
  EXPECT_EQ(parsed<ServeConfig>({"serve"}).metrics_window_s, 60);
  EXPECT_EQ(parsed<ServeConfig>({"serve", "--metrics-window", "300"}).metrics_window_s, 300);
  EXPECT_NE(refused({"serve", "--metrics-window", "1"}).find("between 6 and 86400"),
            std::string::npos);
}

// One file for the whole deployment: each command takes its own keys and its tables' keys, and
// skips the keys only other commands know.
TEST(SharedConfigFile, EachCommandTakesItsOwnKeys) {
  const std::string file = write_file(
      "elastic_url = \"http://shared:9200\"\n"
      "port = 9000\n"
      "kibana_url = \"http://k:5601\"\n"
      "[serve]\nslots = 2\n"
      "[elastic]\nelastic_user = \"ops\"\n"
      "[elastic.setup]\nrequests_retention = \"14d\"\n"
      "[elastic.replay]\ntimeout_ms = 1000\n"
      "[kibana.setup]\nspace = \"llm\"\n");
  const auto s = parsed<ServeConfig>({"serve", "--config", file});
  EXPECT_EQ(s.elastic_url, "http://shared:9200");
  EXPECT_EQ(s.port, 9000);
  EXPECT_EQ(s.slots, 2);
  EXPECT_EQ(s.elastic_user, "");  // [elastic] is the elastic commands' table, not serve's
  const auto setup = parsed<ElasticSetupConfig>({"elastic", "setup", "--config", file});
  EXPECT_EQ(setup.elastic_url, "http://shared:9200");
  EXPECT_EQ(setup.elastic_user, "ops");
  EXPECT_EQ(setup.requests_retention, "14d");
  const auto replay = parsed<ElasticReplayConfig>({"elastic", "replay", "--config", file});
  EXPECT_EQ(replay.timeout_ms, 1000);
  EXPECT_EQ(replay.elastic_user, "ops");
  EXPECT_EQ(parsed<KibanaSetupConfig>({"kibana", "setup", "--config", file}).space, "llm");
}

TEST(SharedConfigFile, AKeyNoCommandKnowsIsStillAnError) {
  const std::string file = write_file("elastic_ulr = \"http://typo\"\n");
  EXPECT_NE(refused({"elastic", "setup", "--elastic-url", "http://e", "--config", file})
                .find("unknown key \"elastic_ulr\""),
            std::string::npos);
  const std::string in_table = write_file("[elastic.setup]\nslots = 2\n");
  EXPECT_NE(refused({"elastic", "setup", "--elastic-url", "http://e", "--config", in_table})
                .find("unknown key"),
            std::string::npos)
      << "a key of another command inside this command's own table is a mistake";
}

}  // namespace
}  // namespace llmq
