// The llama.cpp half of telemetry::BuildInfo: which llama.cpp this binary links and the CPU
// features its CPU backend was compiled for, read from llama.cpp itself.
#pragma once

#include "telemetry/build_info.h"

namespace llmq {

// llmq's version plus llama.cpp's release, ggml's version, llama.cpp's system-info report, the
// CPU features and AMX parsed from it, and the running CPU's model name. Safe before any model
// is loaded; cheap enough to call once at start.
telemetry::BuildInfo llama_build_info();

}  // namespace llmq
