#include "util/utf8.h"

#include <cstdint>

namespace llmq {

namespace {

// The outcome of reading one character at a position.
enum class Step { kComplete, kIllFormed, kIncomplete };

struct StepResult {
  Step step;
  std::size_t length;  // bytes covered: the character, or the maximal ill-formed subpart
};

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Reads one character at `pos` following Unicode table 3-7 (well-formed byte sequences).
// The allowed range of the second byte depends on the lead byte; that is where overlongs
// (E0, F0), surrogates (ED) and code points above U+10FFFF (F4) are excluded. On failure,
// `length` is the maximal subpart (Unicode 3.9, "U+FFFD substitution of maximal subparts"):
// the longest prefix of a well-formed sequence, and at least one byte.
StepResult read_char(std::string_view bytes, std::size_t pos) {
  const auto lead = static_cast<std::uint8_t>(bytes[pos]);
  if (lead < 0x80) return {Step::kComplete, 1};

  std::size_t need;
  std::uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    // C0, C1, F5..FF never start a character; 80..BF here is a stray continuation.
    return {Step::kIllFormed, 1};
  }

  for (std::size_t i = 1; i < need; ++i) {
    if (pos + i >= bytes.size()) return {Step::kIncomplete, i};
    const auto b = static_cast<std::uint8_t>(bytes[pos + i]);
    const bool ok = (i == 1) ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return {Step::kIllFormed, i};
  }
  return {Step::kComplete, need};
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const StepResult r = read_char(text, pos);
    if (r.step != Step::kComplete) return false;
    pos += r.length;
  }
  return true;
}

Utf8Split take_complete_utf8(std::string_view bytes) {
  Utf8Split out{{}, 0};
  out.text.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const StepResult r = read_char(bytes, pos);
    if (r.step == Step::kIncomplete) break;  // only ever at the very end: keep for later
    if (r.step == Step::kComplete) {
      out.text.append(bytes.substr(pos, r.length));
    } else {
      out.text.append(kReplacement);
    }
    pos += r.length;
  }
  out.consumed = pos;
  return out;
}

}  // namespace llmq
