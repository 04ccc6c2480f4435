// Fuzz target: SSE framing (http/sse.h) read back by a reference parser.
//
// Input: ID NUL EVENT NUL COMMENT NUL DATA, where ID is decimal text (anything else: its length),
// missing fields are empty and DATA is the rest (NULs included). The frames are
// sse_comment(COMMENT) + sse_event(ID, EVENT, DATA) twice. Invariants: a client following the
// WHATWG event-stream rules sees exactly two events, each with the event name (line breaks
// dropped, as sse_event promises), the data (every CRLF, CR or LF as LF, since that is all the
// format can carry) and the id; the comment produces nothing; no bytes are left over.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "http/sse.h"

namespace {

struct Event {
  std::string type;     // the event name as the client sees it ("message" when none was given)
  std::string data;     // the data lines joined with LF
  std::string last_id;  // the last event id when the event was dispatched
};

struct Parsed {
  std::vector<Event> events;
  bool complete = true;  // false when bytes after the last line break were left unread
};

// The parsing rules of the HTML standard's "event stream interpretation", on bytes.
class ReferenceParser {
 public:
  Parsed parse(std::string_view stream) {
    Parsed out;
    std::size_t pos = 0;
    while (pos < stream.size()) {
      const std::size_t brk = stream.find_first_of("\r\n", pos);
      if (brk == std::string_view::npos) {
        out.complete = false;
        break;
      }
      line(stream.substr(pos, brk - pos), out);
      pos = brk + 1;
      if (stream[brk] == '\r' && pos < stream.size() && stream[pos] == '\n') ++pos;
    }
    return out;
  }

 private:
  void line(std::string_view text, Parsed& out) {
    if (text.empty()) return dispatch(out);
    if (text.front() == ':') return;
    std::string_view name = text;
    std::string_view value;
    if (const std::size_t colon = text.find(':'); colon != std::string_view::npos) {
      name = text.substr(0, colon);
      value = text.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (name == "event") {
      type_ = value;
    } else if (name == "data") {
      data_.append(value).push_back('\n');
    } else if (name == "id") {
      if (value.find('\0') == std::string_view::npos) id_ = value;
    }
  }

  void dispatch(Parsed& out) {
    if (data_.empty()) {
      type_.clear();
      return;
    }
    data_.pop_back();  // the LF after the last data line
    out.events.push_back(Event{type_.empty() ? "message" : type_, data_, id_});
    data_.clear();
    type_.clear();
  }

  std::string type_;
  std::string data_;
  std::string id_;
};

// Splits at the first NUL; the rest after it goes back into `input`.
std::string_view take_field(std::string_view& input) {
  const std::size_t nul = input.find('\0');
  const std::string_view field = input.substr(0, nul);
  input.remove_prefix(nul == std::string_view::npos ? input.size() : nul + 1);
  return field;
}

std::string without_line_breaks(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c != '\r' && c != '\n') out.push_back(c);
  }
  return out;
}

std::string line_breaks_as_lf(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(bytes), size);
  const std::string_view id_text = take_field(input);
  const std::string_view event = take_field(input);
  const std::string_view comment = take_field(input);
  const std::string_view data = input;

  auto id = static_cast<std::int64_t>(id_text.size());
  std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);

  const std::string frame = llmq::http::sse_event(id, event, data);
  FUZZ_CHECK(frame.size() >= 2 && frame.substr(frame.size() - 2) == "\n\n");
  const std::string stream = llmq::http::sse_comment(comment) + frame + frame;

  const Parsed parsed = ReferenceParser().parse(stream);
  FUZZ_CHECK(parsed.complete);
  FUZZ_CHECK(parsed.events.size() == 2);
  const std::string name = without_line_breaks(event);
  const std::string expected_data = line_breaks_as_lf(data);
  for (const Event& e : parsed.events) {
    FUZZ_CHECK(e.type == (name.empty() ? "message" : name));
    FUZZ_CHECK(e.data == expected_data);
    FUZZ_CHECK(e.last_id == std::to_string(id));
  }
  return 0;
}
