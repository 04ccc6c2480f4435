#include "api/json_body.h"

#include <cstddef>
#include <utility>
#include <vector>

#include "util/utf8.h"

namespace llmq {
namespace {

using json = nlohmann::json;
using MaybeError = std::optional<ApiError>;

// Deeper bodies are refused before they are built: no legitimate request nests this far,
// and a bound keeps hostile input from costing memory or stack anywhere downstream.
constexpr std::size_t kMaxDepth = 64;

ApiError not_an_object() { return invalid_json("request body must be a JSON object"); }

// Builds the document through nlohmann's SAX interface rather than json::parse, because
// json::parse silently keeps the last of duplicate keys and has no depth limit. Returning
// false from a callback stops the parser at once, so a refused body is never fully built.
class BodyBuilder final : public nlohmann::json_sax<json> {
 public:
  json& root() { return root_; }
  MaybeError& error() { return error_; }

  bool null() override { return add(nullptr); }
  bool boolean(bool v) override { return add(v); }
  bool number_integer(number_integer_t v) override { return add(v); }
  bool number_unsigned(number_unsigned_t v) override { return add(v); }
  bool number_float(number_float_t v, const string_t& /*text*/) override { return add(v); }
  bool string(string_t& v) override { return add(std::move(v)); }
  bool binary(binary_t& /*v*/) override { return fail(not_an_object()); }  // not in JSON text

  bool start_object(std::size_t /*n*/) override { return open(json::object()); }
  bool start_array(std::size_t /*n*/) override { return open(json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    // Every earlier key already has its value (or its open container) in the object.
    Frame& top = stack_.back();
    if (top.node->contains(k)) {
      return fail(invalid_json("request body contains a duplicate key", k));
    }
    top.key = std::move(k);
    return true;
  }

  bool parse_error(std::size_t position, const std::string& /*token*/,
                   const json::exception& ex) override {
    constexpr int kNumberOverflow = 406;  // nlohmann: a number beyond the range of double
    if (ex.id == kNumberOverflow && !stack_.empty() && stack_.front().node->is_object()) {
      const std::string where = path();
      return fail(bad_field(where, "out_of_range", where + " is a number too large to represent"));
    }
    return fail(invalid_json("request body is not valid JSON (error near byte " +
                             std::to_string(position) + ")"));
  }

 private:
  struct Frame {
    json* node;       // the open object or array
    std::string key;  // for an object: the key whose value comes next
  };

  // Places `v` in the innermost open container and returns where it landed. Earlier pointers
  // on the stack stay valid: only the innermost container grows while its children are closed.
  json* place(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Frame& top = stack_.back();
    if (top.node->is_array()) {
      top.node->push_back(std::move(v));
      return &top.node->back();
    }
    return &((*top.node)[top.key] = std::move(v));
  }

  bool add(json v) {
    place(std::move(v));
    return true;
  }

  bool open(json container) {
    if (stack_.size() >= kMaxDepth) {
      return fail(invalid_json("request body nests deeper than " + std::to_string(kMaxDepth) +
                               " levels"));
    }
    stack_.push_back(Frame{place(std::move(container)), {}});
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  bool fail(ApiError e) {
    if (!error_) error_ = std::move(e);
    return false;
  }

  // Names the value being read, e.g. "messages[2].content", for errors inside a value.
  std::string path() const {
    std::string out;
    for (std::size_t i = 0; i < stack_.size(); ++i) {
      const Frame& f = stack_[i];
      if (f.node->is_array()) {
        const bool innermost = i + 1 == stack_.size();
        out += "[" + std::to_string(f.node->size() - (innermost ? 0 : 1)) + "]";
      } else {
        if (!out.empty()) out += '.';
        out += f.key;
      }
    }
    return out;
  }

  json root_;
  std::vector<Frame> stack_;
  MaybeError error_;
};

}  // namespace

std::optional<ApiError> parse_body(std::string_view body, nlohmann::json& doc) {
  // Checked up front so every string, key and byte outside strings is covered alike.
  if (!is_valid_utf8(body)) return invalid_json("request body is not valid UTF-8");
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return invalid_json("request body is empty");
  }
  BodyBuilder builder;
  const bool ok = json::sax_parse(body.begin(), body.end(), &builder);
  if (!ok) {
    if (builder.error()) return std::move(*builder.error());
    return invalid_json("request body is not valid JSON");
  }
  if (!builder.root().is_object()) return not_an_object();
  doc = std::move(builder.root());
  return std::nullopt;
}

ApiError invalid_json(std::string message, std::optional<std::string> field) {
  return ApiError{400, "invalid_json", std::move(message), std::move(field)};
}

}  // namespace llmq
