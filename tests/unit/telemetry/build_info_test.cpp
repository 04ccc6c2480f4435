#include "telemetry/build_info.h"

#include <gtest/gtest.h>

namespace llmq::telemetry {
namespace {

// llama.cpp's report as a build with AVX-512 and AMX prints it (ggml-cpu's get_features).
constexpr const char* kAmxReport =
    "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
    "AVX512 = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | "
    "OPENMP = 1 | REPACK = 1 | ";

// The flags of a 2-core Sapphire Rapids guest, abridged, and of an AVX2-only Zen 2.
constexpr const char* kSapphireRapidsFlags =
    "fpu sse sse2 pni ssse3 fma sse4_1 sse4_2 avx f16c bmi2 avx2 avx512f avx512dq avx512cd "
    "avx512bw avx512vl avx512_bf16 avx512_vnni amx_bf16 amx_tile amx_int8";
constexpr const char* kZen2Flags = "fpu sse sse2 pni ssse3 fma sse4_1 sse4_2 avx f16c bmi2 avx2";

TEST(BuildInfo, CpuFeaturesAreTheInstructionSetsTheReportTurnsOn) {
  EXPECT_EQ(cpu_features_from_system_info(kAmxReport),
            "SSE3 SSSE3 AVX AVX2 F16C FMA BMI2 AVX512 AVX512_VNNI AVX512_BF16 AMX_INT8");
  EXPECT_EQ(cpu_features_from_system_info("CPU : AVX = 1 | AVX2 = 0 | REPACK = 1 | "), "AVX");
  EXPECT_EQ(cpu_features_from_system_info("no backend report"), "");
}

TEST(BuildInfo, AnotherBackendsFeaturesAreNotTheCpus) {
  EXPECT_EQ(cpu_features_from_system_info("CPU : AVX2 = 1 | Metal : EMBED_LIBRARY = 1 | "), "AVX2");
}

TEST(BuildInfo, ABuildNeedingWhatTheCpuLacksIsNamed) {
  const std::string features = cpu_features_from_system_info(kAmxReport);
  EXPECT_EQ(missing_cpu_features(features, kSapphireRapidsFlags), "");
  EXPECT_EQ(missing_cpu_features(features, kZen2Flags), "AVX512 AVX512_VNNI AVX512_BF16 AMX_INT8");
  EXPECT_EQ(missing_cpu_features("AVX2 FMA F16C", kZen2Flags), "");
  EXPECT_EQ(missing_cpu_features("NEON SOMETHING_NEW", kZen2Flags), "") << "unknown: assumed there";
}

TEST(BuildInfo, CpuinfoFieldsComeFromTheFirstProcessor) {
  const std::string cpuinfo =
      "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz\n"
      "flags\t\t: fpu avx2 amx_tile\n\nprocessor\t: 1\nmodel name\t: other\n";
  EXPECT_EQ(cpuinfo_field(cpuinfo, "model name"), "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz");
  EXPECT_EQ(cpuinfo_field(cpuinfo, "flags"), "fpu avx2 amx_tile");
  EXPECT_EQ(cpuinfo_field(cpuinfo, "microcode"), "");
}

TEST(BuildInfo, LabelsCarryVersionFeaturesAndAmx) {
  BuildInfo info = llmq_build_info();
  info.cpu_features = "AVX2 FMA";
  info.amx = false;
  const auto labels = build_info_labels(info);
  ASSERT_FALSE(labels.empty());
  EXPECT_EQ(labels.front(), (std::pair<std::string, std::string>{"version", info.version}));
  bool saw_amx = false;
  for (const auto& [name, value] : labels) {
    if (name == "amx") {
      saw_amx = true;
      EXPECT_EQ(value, "off");
    }
    if (name == "cpu_features") {
      EXPECT_EQ(value, "AVX2 FMA");
    }
  }
  EXPECT_TRUE(saw_amx);
  EXPECT_NE(describe(info).find("AMX kernels off"), std::string::npos);
}

}  // namespace
}  // namespace llmq::telemetry
