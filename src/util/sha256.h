// SHA-256 of a byte string, as 64 lower-case hex digits (OpenSSL's libcrypto). Where a digest
// must mean the same thing in every process and build (an Idempotency-Key's body), not
// std::hash, which differs between builds and collides by design.
#pragma once

#include <string>
#include <string_view>

namespace llmq {

std::string sha256_hex(std::string_view data);

}  // namespace llmq
