// Standard base64 (RFC 4648, with padding), for OpenAI's base64-encoded embeddings.
#pragma once

#include <string>
#include <string_view>

namespace llmq {

std::string base64_encode(std::string_view bytes);

}  // namespace llmq
