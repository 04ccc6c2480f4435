// Tests of the llmq command line: flags, LLMQ_* environment, TOML file, precedence, validation.
#include "cli/config.h"

#include "cli/config_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace llmq {
namespace {

using namespace config_test;

class ConfigTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "llmq_config_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path dir_;
};

TEST(Config, Defaults) {
  const ServeConfig config = serve({"serve"});
  ServeConfig expected;
  expected.model = kHomeModel;
  expected.spool_dir = "/home/u/.cache/llmq/spool";
  EXPECT_EQ(describe(config), describe(expected));
  EXPECT_EQ(config.config_file, "");
}

TEST(Config, EachFlagParsed) {
  const ServeConfig c = serve({"serve", "--model", "/m.gguf", "--host", "0.0.0.0", "--port", "0",
                               "--slots", "8", "--threads", "3", "--ctx-size", "2048",
                               "--batch-size", "64", "--queue-max", "0", "--ping-interval-ms",
                               "250", "--elastic-url", "http://es:9200", "--max-body-bytes",
                               "2048", "--max-header-bytes", "4096", "--timeout-ms", "0",
                               "--default-max-tokens", "32", "--http-threads", "2",
                               "--log-level=debug"});
  EXPECT_EQ(c.model, "/m.gguf");
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.slots, 8);
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.ctx_size, 2048);
  EXPECT_EQ(c.batch_size, 64);
  EXPECT_EQ(c.queue_max, 0);
  EXPECT_EQ(c.ping_interval_ms, 250);
  EXPECT_EQ(c.elastic_url, "http://es:9200");
  EXPECT_EQ(c.max_body_bytes, 2048);
  EXPECT_EQ(c.max_header_bytes, 4096);
  EXPECT_EQ(c.timeout_ms, 0);
  EXPECT_EQ(c.default_max_tokens, 32);
  EXPECT_EQ(c.http_threads, 2);
  EXPECT_EQ(c.log_level, "debug");
}

TEST(Config, EachFlagReadsItsEnvironmentVariable) {
  const ServeConfig c = serve(
      {"serve"}, {{"LLMQ_MODEL", "/e.gguf"},         {"LLMQ_HOST", "::1"},
                  {"LLMQ_PORT", "9000"},             {"LLMQ_SLOTS", "2"},
                  {"LLMQ_THREADS", "5"},             {"LLMQ_CTX_SIZE", "1024"},
                  {"LLMQ_BATCH_SIZE", "128"},        {"LLMQ_QUEUE_MAX", "7"},
                  {"LLMQ_PING_INTERVAL_MS", "50"},   {"LLMQ_ELASTIC_URL", "http://x"},
                  {"LLMQ_MAX_BODY_BYTES", "99"},     {"LLMQ_MAX_HEADER_BYTES", "2048"},
                  {"LLMQ_TIMEOUT_MS", "1234"},       {"LLMQ_DEFAULT_MAX_TOKENS", "16"},
                  {"LLMQ_HTTP_THREADS", "3"},        {"LLMQ_LOG_LEVEL", "warn"}});
  EXPECT_EQ(c.model, "/e.gguf");
  EXPECT_EQ(c.host, "::1");
  EXPECT_EQ(c.port, 9000);
  EXPECT_EQ(c.slots, 2);
  EXPECT_EQ(c.threads, 5);
  EXPECT_EQ(c.ctx_size, 1024);
  EXPECT_EQ(c.batch_size, 128);
  EXPECT_EQ(c.queue_max, 7);
  EXPECT_EQ(c.ping_interval_ms, 50);
  EXPECT_EQ(c.elastic_url, "http://x");
  EXPECT_EQ(c.max_body_bytes, 99);
  EXPECT_EQ(c.max_header_bytes, 2048);
  EXPECT_EQ(c.timeout_ms, 1234);
  EXPECT_EQ(c.default_max_tokens, 16);
  EXPECT_EQ(c.http_threads, 3);
  EXPECT_EQ(c.log_level, "warn");
}

TEST(Config, ConnectionLimitsHaveDefaultsFlagsAndRanges) {
  const ServeConfig d = serve({"serve"});
  EXPECT_EQ(d.header_timeout_ms, 10000);
  EXPECT_EQ(d.body_timeout_ms, 30000);
  EXPECT_EQ(d.idle_timeout_ms, 60000);
  EXPECT_EQ(d.send_timeout_ms, 60000);
  EXPECT_EQ(d.max_connections, 1024);
  EXPECT_EQ(d.max_stream_buffer_bytes, 1 << 20);
  const ServeConfig c = serve({"serve", "--header-timeout-ms", "500", "--body-timeout-ms", "600",
                               "--idle-timeout-ms", "700", "--max-connections", "5000"},
                              {{"LLMQ_SEND_TIMEOUT_MS", "800"},
                               {"LLMQ_MAX_STREAM_BUFFER_BYTES", "65536"}});
  EXPECT_EQ(c.header_timeout_ms, 500);
  EXPECT_EQ(c.body_timeout_ms, 600);
  EXPECT_EQ(c.idle_timeout_ms, 700);
  EXPECT_EQ(c.send_timeout_ms, 800);
  EXPECT_EQ(c.max_connections, 5000);
  EXPECT_EQ(c.max_stream_buffer_bytes, 65536);
  EXPECT_NE(usage_error({"serve", "--max-connections", "0"}).find("--max-connections"),
            std::string::npos);
  EXPECT_NE(usage_error({"serve", "--idle-timeout-ms", "0"}).find("--idle-timeout-ms"),
            std::string::npos);
  EXPECT_NE(usage_error({"serve", "--max-stream-buffer-bytes", "100"})
                .find("--max-stream-buffer-bytes must be between 4096"),
            std::string::npos);
  const std::string line = describe(d);
  for (const char* key : {"header_timeout_ms=10000", "max_connections=1024",
                          "max_stream_buffer_bytes=1048576"})
    EXPECT_NE(line.find(key), std::string::npos) << key;
}

TEST(Config, FlagBeatsEnvironment) {
  EXPECT_EQ(serve({"serve", "--ctx-size", "512"}, {{"LLMQ_CTX_SIZE", "1024"}}).ctx_size, 512);
}

TEST(Config, EmptyEnvironmentVariableCountsAsUnset) {
  EXPECT_EQ(serve({"serve"}, {{"LLMQ_PORT", ""}}).port, 8080);
}

TEST(Config, RepeatedFlagLastWins) {
  EXPECT_EQ(serve({"serve", "--slots", "2", "--slots", "3"}).slots, 3);
}

TEST(Config, LargeInt64Values) {
  const ServeConfig c =
      serve({"serve", "--max-body-bytes", "1073741824", "--timeout-ms", "86400000"});
  EXPECT_EQ(c.max_body_bytes, std::int64_t{1} << 30);
  EXPECT_EQ(c.timeout_ms, 86400000);
}

TEST_F(ConfigTest, FileBeatsDefault) {
  const std::string file = write("a.toml", "ctx-size = 2048\nhost = \"0.0.0.0\"\n");
  const ServeConfig c = serve({"serve", "--config", file});
  EXPECT_EQ(c.ctx_size, 2048);
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.slots, 4);
  EXPECT_EQ(c.config_file, file);
}

TEST_F(ConfigTest, AListFlagRepeatsAndAFileGivesItAsAnArray) {
  EXPECT_EQ(serve({"serve", "--model-alias", "a=m", "--model-alias", "b=m,c=m"}).model_alias,
            "a=m,b=m,c=m");
  EXPECT_EQ(serve({"serve"}, {{"LLMQ_MODEL_ALIAS", "a=m,b=m"}}).model_alias, "a=m,b=m");
  const std::string file = write("a.toml", "model_alias = [\"gpt-3.5-turbo=m\", \"davinci-002=m\"]\n");
  EXPECT_EQ(serve({"serve", "--config", file}).model_alias, "gpt-3.5-turbo=m,davinci-002=m");
  EXPECT_EQ(serve({"serve", "--config", file, "--model-alias", "x=m"}).model_alias, "x=m");
  // Other flags keep "the last one wins".
  EXPECT_EQ(serve({"serve", "--port", "1", "--port", "2"}).port, 2);
}

TEST_F(ConfigTest, EnvironmentBeatsFile) {
  const std::string file = write("a.toml", "ctx-size = 2048\n");
  EXPECT_EQ(serve({"serve", "--config", file}, {{"LLMQ_CTX_SIZE", "1024"}}).ctx_size, 1024);
}

TEST_F(ConfigTest, FlagBeatsFile) {
  const std::string file = write("a.toml", "ctx-size = 2048\n");
  EXPECT_EQ(serve({"serve", "--config", file, "--ctx-size", "256"}).ctx_size, 256);
}

TEST_F(ConfigTest, ConfigFileFromEnvironment) {
  const std::string file = write("a.toml", "port = 1234\n");
  const ServeConfig c = serve({"serve"}, {{"LLMQ_CONFIG", file}});
  EXPECT_EQ(c.port, 1234);
  EXPECT_EQ(c.config_file, file);
}

TEST_F(ConfigTest, ConfigFlagBeatsConfigEnvironment) {
  const std::string a = write("a.toml", "port = 1\n");
  const std::string b = write("b.toml", "port = 2\n");
  EXPECT_EQ(serve({"serve", "--config", b}, {{"LLMQ_CONFIG", a}}).port, 2);
  // An empty --config turns off the file named by the environment.
  const ServeConfig none = serve({"serve", "--config", ""}, {{"LLMQ_CONFIG", a}});
  EXPECT_EQ(none.port, 8080);
  EXPECT_EQ(none.config_file, "");
}

TEST_F(ConfigTest, ServeTableAndBothKeySpellings) {
  const std::string file = write("a.toml",
                                 "log_level = \"debug\"\n"
                                 "[serve]\n"
                                 "ctx-size = 2048\n"
                                 "batch_size = 64\n"
                                 "max_body_bytes = 4096\n");
  const ServeConfig c = serve({"serve", "--config", file});
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.ctx_size, 2048);
  EXPECT_EQ(c.batch_size, 64);
  EXPECT_EQ(c.max_body_bytes, 4096);
}

TEST_F(ConfigTest, ServeTableBeatsTopLevel) {
  const std::string file = write("a.toml", "slots = 2\n[serve]\nslots = 3\n");
  EXPECT_EQ(serve({"serve", "--config", file}).slots, 3);
}

TEST_F(ConfigTest, KeyGivenTwiceInOneTableIsError) {
  const std::string file = write("a.toml", "ctx-size = 1024\nctx_size = 2048\n");
  EXPECT_NE(usage_error({"serve", "--config", file}).find("ctx_size"), std::string::npos);
}

TEST_F(ConfigTest, UnknownKeyIsError) {
  const std::string file = write("a.toml", "[serve]\nctx_sise = 2048\n");
  const std::string err = usage_error({"serve", "--config", file});
  EXPECT_EQ(err, "llmq: " + file + ": unknown key \"serve.ctx_sise\"\n");
}

TEST_F(ConfigTest, UnknownTableIsError) {
  const std::string file = write("a.toml", "[server]\nport = 1\n");
  EXPECT_NE(usage_error({"serve", "--config", file}).find("\"server\""), std::string::npos);
}

TEST_F(ConfigTest, UnknownKeyIsErrorEvenWhenOverridden) {
  const std::string file = write("a.toml", "prot = 1\n");
  usage_error({"serve", "--config", file, "--port", "2"});
}

TEST_F(ConfigTest, WrongTypeIsErrorNamingKeyAndFile) {
  const std::string file = write("a.toml", "port = \"8080\"\n");
  const std::string err = usage_error({"serve", "--config", file});
  EXPECT_EQ(err, "llmq: " + file + ": key \"port\" must be an integer, not string\n");
  const std::string host = write("b.toml", "host = 1\n");
  EXPECT_NE(usage_error({"serve", "--config", host}).find("\"host\" must be a string"),
            std::string::npos);
}

TEST_F(ConfigTest, OutOfRangeInFileNamesFileAndKey) {
  const std::string file = write("a.toml", "[serve]\nslots = 0\n");
  EXPECT_EQ(usage_error({"serve", "--config", file}),
            "llmq: " + file + ": key \"serve.slots\": --slots must be between 1 and 256 (got 0)\n");
}

TEST_F(ConfigTest, SyntaxErrorNamesFile) {
  const std::string file = write("a.toml", "port = = 1\n");
  EXPECT_TRUE(usage_error({"serve", "--config", file}).starts_with("llmq: " + file + ":1:"));
}

TEST_F(ConfigTest, MissingConfigFileIsError) {
  const std::string missing = (dir_ / "nope.toml").string();
  EXPECT_NE(usage_error({"serve", "--config", missing}).find(missing), std::string::npos);
  EXPECT_NE(usage_error({"serve"}, {{"LLMQ_CONFIG", missing}}).find(missing), std::string::npos);
  usage_error({"serve", "--config", dir_.string()});  // a directory is not a file
}

TEST(Config, OutOfRangeMessage) {
  EXPECT_EQ(usage_error({"serve", "--slots", "0"}),
            "llmq: --slots must be between 1 and 256 (got 0)\n");
}

// Each numeric flag accepts both ends of its range and refuses one past either end.
TEST(Config, RangesOfEveryNumericFlag) {
  struct Range {
    std::string flag;
    long long min, max;
  };
  const Range ranges[] = {
      {"port", 0, 65535},         {"slots", 1, 256},
      {"threads", 0, 1024},       {"ctx-size", 16, 1048576},
      {"batch-size", 1, 65536},   {"queue-max", 0, 1000000},
      {"ping-interval-ms", 10, 3600000}, {"max-body-bytes", 1, 1LL << 30},
      {"max-header-bytes", 1024, 1 << 20}, {"timeout-ms", 0, 86400000},
      {"default-max-tokens", 1, 1048576}, {"http-threads", 1, 64},
  };
  for (const auto& r : ranges) {
    SCOPED_TRACE(r.flag);
    const std::string flag = "--" + r.flag;
    serve({"serve", flag, std::to_string(r.min)});
    serve({"serve", flag, std::to_string(r.max)});
    for (long long bad : {r.min - 1, r.max + 1})
      EXPECT_NE(usage_error({"serve", flag, std::to_string(bad)}).find(flag), std::string::npos);
  }
}

TEST(Config, WarmPoolFlags) {
  const ServeConfig d = serve({"serve"});
  EXPECT_EQ(d.models, "");
  EXPECT_EQ(d.max_loaded, 2);
  EXPECT_EQ(d.keep_alive, "5m");
  EXPECT_EQ(d.preload, "");
  EXPECT_EQ(d.pin, "");
  EXPECT_EQ(served_model_paths(d), std::vector<std::string>{kHomeModel});

  const ServeConfig c =
      serve({"serve", "--model", "/m/a.gguf", "--models", "/m/b.gguf, /m/a.gguf,,/n/c.gguf",
             "--max-loaded", "2", "--keep-alive", "30s", "--preload", "a,b", "--pin", "c"});
  EXPECT_EQ(served_model_paths(c),
            (std::vector<std::string>{"/m/a.gguf", "/m/b.gguf", "/n/c.gguf"}));
  EXPECT_EQ(c.keep_alive, "30s");
  EXPECT_EQ(split_list(c.preload), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(model_name_of("/m/SmolLM2-135M-Instruct.Q4_1.gguf"), "SmolLM2-135M-Instruct.Q4_1");
  // A negative duration is a value, not a flag.
  EXPECT_EQ(serve({"serve", "--keep-alive", "-1"}).keep_alive, "-1");
  EXPECT_EQ(serve({"serve", "--keep-alive=-1m"}).keep_alive, "-1m");
  EXPECT_EQ(serve({"serve"}, {{"LLMQ_KEEP_ALIVE", "0"}}).keep_alive, "0");
}

TEST(Config, WarmPoolFlagErrors) {
  EXPECT_EQ(usage_error({"serve", "--keep-alive", "5 minutes"}),
            "llmq: --keep-alive must be a duration such as 5m, 30s, 0 or -1 (got \"5 minutes\")\n");
  EXPECT_EQ(usage_error({"serve", "--model", "/m/a.gguf", "--preload", "b"}),
            "llmq: --preload names b, which is not served (served: a)\n");
  EXPECT_NE(usage_error({"serve", "--model", "/m/a.gguf", "--pin", "x"}).find("--pin names x"),
            std::string::npos);
  EXPECT_EQ(usage_error({"serve", "--model", "/m/a.gguf", "--models", "/m/b.gguf,/m/c.gguf",
                         "--max-loaded", "1", "--pin", "a,b"}),
            "llmq: --pin names 2 models, more than --max-loaded 1\n");
  EXPECT_NE(usage_error({"serve", "--model", "/m/a.gguf", "--models", "/m/b.gguf",
                         "--max-loaded", "1", "--preload", "a,b"}).find("--preload names 2 models"),
            std::string::npos);
  EXPECT_EQ(usage_error({"serve", "--model", "/m/a.gguf", "--models", "/n/a.gguf"}),
            "llmq: two models are named a: /m/a.gguf and /n/a.gguf (a model's name is its file "
            "stem)\n");
  EXPECT_NE(usage_error({"serve", "--max-loaded", "0"}).find("--max-loaded"), std::string::npos);
}

TEST(Config, HugeNumberIsRangeError) {
  EXPECT_EQ(usage_error({"serve", "--port", "99999999999999999999"}),
            "llmq: --port must be between 0 and 65535 (got 99999999999999999999)\n");
}

TEST(Config, NonNumericValues) {
  EXPECT_EQ(usage_error({"serve"}, {{"LLMQ_PORT", "abc"}}),
            "llmq: LLMQ_PORT=abc: --port must be an integer (got \"abc\")\n");
  EXPECT_EQ(usage_error({"serve", "--slots", "4x"}),
            "llmq: --slots must be an integer (got \"4x\")\n");
  usage_error({"serve", "--slots", ""});
  usage_error({"serve", "--slots", "1.5"});
}

TEST(Config, LogLevels) {
  for (const char* level : {"trace", "debug", "info", "warn", "error"})
    EXPECT_EQ(serve({"serve", "--log-level", level}).log_level, level);
  EXPECT_EQ(usage_error({"serve"}, {{"LLMQ_LOG_LEVEL", "verbose"}}),
            "llmq: LLMQ_LOG_LEVEL=verbose: --log-level must be one of trace, debug, info, warn, "
            "error (got \"verbose\")\n");
}

TEST(Config, HelpPrintsToStdoutAndExitsZero) {
  testing::internal::CaptureStdout();
  CommandLine top = parse({"--help"});
  const std::string top_help = testing::internal::GetCapturedStdout();
  ASSERT_TRUE(std::holds_alternative<ExitNow>(top));
  EXPECT_EQ(std::get<ExitNow>(top).code, 0);
  EXPECT_NE(top_help.find("serve"), std::string::npos);

  testing::internal::CaptureStdout();
  CommandLine sub = parse({"serve", "--help"});
  const std::string help = testing::internal::GetCapturedStdout();
  ASSERT_TRUE(std::holds_alternative<ExitNow>(sub));
  EXPECT_EQ(std::get<ExitNow>(sub).code, 0);
  for (const char* text : {"--model", "--ctx-size", "--http-threads", "--config FILE", "[default: 4096]",
                           "LLMQ_MODEL"})
    EXPECT_NE(help.find(text), std::string::npos) << text;
  EXPECT_NE(help.find("[default: " + kHomeModel + "]"), std::string::npos);
}

TEST(Config, VersionIsAFlagAndASubcommand) {
  EXPECT_TRUE(std::holds_alternative<ShowVersion>(parse({"--version"})));
  EXPECT_TRUE(std::holds_alternative<ShowVersion>(parse({"version"})));
  EXPECT_NE(usage_error({"version", "extra"}).find("extra"), std::string::npos);
}

TEST(Config, CommandLineErrors) {
  EXPECT_EQ(usage_error({}),
            "llmq: missing subcommand (expected a subcommand: serve, gateway, worker, elastic, kibana, "
            "version; see "
            "'llmq --help')\n");
  EXPECT_NE(usage_error({"srve"}).find("unknown subcommand 'srve'"), std::string::npos);
  EXPECT_NE(usage_error({"serve", "--bogus"}).find("--bogus"), std::string::npos);
  EXPECT_NE(usage_error({"--bogus"}).find("--bogus"), std::string::npos);
  EXPECT_NE(usage_error({"--port", "1", "serve"}).find("--port"), std::string::npos);
  usage_error({"serve", "extra"});
  usage_error({"serve", "--port"});
}

TEST(Config, DefaultModelPath) {
  const std::string file = "/SmolLM2-135M-Instruct.Q4_1.gguf";
  EXPECT_EQ(default_model_path(env_of({{"LLMQ_MODELS_DIR", "/models"},
                                       {"XDG_CACHE_HOME", "/xdg"},
                                       {"HOME", "/home/u"}})),
            "/models" + file);
  EXPECT_EQ(default_model_path(env_of({{"XDG_CACHE_HOME", "/xdg"}, {"HOME", "/home/u"}})),
            "/xdg/llmq/models" + file);
  EXPECT_EQ(default_model_path(env_of({{"HOME", "/home/u"}})), "/home/u/.cache/llmq/models" + file);
  EXPECT_EQ(default_model_path(env_of({{"LLMQ_MODELS_DIR", ""}, {"HOME", "/h"}})),
            "/h/.cache/llmq/models" + file);
}

TEST(Config, ModelDefaultFollowsEnvironmentAndFlagOverrides) {
  EXPECT_EQ(serve({"serve"}, {{"LLMQ_MODELS_DIR", "/m"}}).model,
            "/m/SmolLM2-135M-Instruct.Q4_1.gguf");
  EXPECT_EQ(serve({"serve", "--model", "/x.gguf"}, {{"LLMQ_MODELS_DIR", "/m"}}).model, "/x.gguf");
}

TEST(Config, DescribeListsEveryFieldAndMasksSecrets) {
  ServeConfig config;
  config.model = "/my models/m.gguf";
  config.elastic_url = "https://elastic:s3cret@es.example:9200/prefix";
  const std::string line = describe(config);
  EXPECT_EQ(line.find("s3cret"), std::string::npos) << line;
  EXPECT_NE(line.find("elastic_url=https://***@es.example:9200/prefix"), std::string::npos) << line;
  EXPECT_NE(line.find("model=\"/my models/m.gguf\""), std::string::npos) << line;
  for (const char* key : {"host=127.0.0.1", "port=8080", "slots=4", "threads=0", "ctx_size=4096",
                          "batch_size=512", "queue_max=64", "ping_interval_ms=1000",
                          "max_body_bytes=1048576", "max_header_bytes=16384", "timeout_ms=600000",
                          "default_max_tokens=256", "http_threads=1", "log_level=info",
                          "config_file="})
    EXPECT_NE(line.find(key), std::string::npos) << key;
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(Config, DescribeMasksConservatively) {
  ServeConfig config;
  config.elastic_url = "http://es:9200/a@b";  // an @ in the path is masked too: safer
  EXPECT_NE(describe(config).find("elastic_url=http://***@b"), std::string::npos);
  config.elastic_url = "http://es:9200";
  EXPECT_NE(describe(config).find("elastic_url=http://es:9200 "), std::string::npos);
}

TEST(Config, DocumentFlagsDefaultsAndSecretsMasked) {
  const ServeConfig c = serve({"serve"}, {{"XDG_CACHE_HOME", "/c"}});
  EXPECT_EQ(c.spool_dir, "/c/llmq/spool");
  EXPECT_EQ(c.snapshot_interval_ms, 10000);
  EXPECT_EQ(c.service_name, "llmq");
  EXPECT_EQ(serve({"serve"}, {{"HOME", "/h"}}).spool_dir, "/h/.cache/llmq/spool");
  EXPECT_EQ(serve({"serve", "--elastic-user", "u"}, {{"LLMQ_ELASTIC_PASSWORD", "pw"}})
                .elastic_password, "pw");
  ServeConfig config;
  config.elastic_api_key = "c2VjcmV0a2V5";
  config.elastic_password = "hunter2";
  const std::string line = describe(config);
  EXPECT_EQ(line.find("c2VjcmV0a2V5"), std::string::npos) << line;
  EXPECT_EQ(line.find("hunter2"), std::string::npos) << line;
  EXPECT_NE(line.find("elastic_api_key=***"), std::string::npos) << line;
}

TEST(Config, ProcessEnvReadsTheRealEnvironment) {
  ASSERT_EQ(setenv("LLMQ_TEST_PROCESS_ENV", "yes", 1), 0);
  EXPECT_EQ(process_env()("LLMQ_TEST_PROCESS_ENV"), "yes");
  unsetenv("LLMQ_TEST_PROCESS_ENV");
  EXPECT_EQ(process_env()("LLMQ_TEST_PROCESS_ENV"), std::nullopt);
}

}  // namespace
}  // namespace llmq
