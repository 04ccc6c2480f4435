#include "api/api_keys.h"

#include <charconv>
#include <optional>
#include <fstream>
#include <sstream>

namespace llmq {
namespace {

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

// Printable ASCII without spaces, and without the two characters the sources give a meaning to
// (',' separates --api-key's keys, '#' starts a key file's comment): a key holding one would be
// read as something else, silently.
std::optional<std::string> secret_problem(std::string_view key) {
  if (key.size() < 8 || key.size() > 256) return "a key must have 8-256 characters";
  for (char c : key) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      return "a key must be printable ASCII without spaces";
    if (c == ',' || c == '#')
      return std::string("a key may not contain '") + c +
             "' (',' separates --api-key's keys, '#' starts a comment in a key file)";
  }
  return std::nullopt;
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, out);
  return error == std::errc{} && stop == end && out >= 0;
}

// One `name=value` option of a key file line.
void apply_option(ApiKey& key, std::string_view option, const std::string& where) {
  const auto eq = option.find('=');
  if (eq == std::string_view::npos) throw std::invalid_argument(where + ": expected name=value, got \"" + std::string(option) + "\"");
  const std::string_view name = option.substr(0, eq);
  const std::string_view value = option.substr(eq + 1);
  ClientLimits limits = key.limits.value_or(ClientLimits{});
  bool ok = true;
  if (name == "name") {
    key.name = std::string(value);
    ok = !value.empty();
  } else if (name == "max_concurrent") {
    ok = parse_number(value, limits.max_concurrent);
    key.limits = limits;
  } else if (name == "rate") {
    ok = parse_number(value, limits.rate);
    key.limits = limits;
  } else if (name == "burst") {
    ok = parse_number(value, limits.burst);
    key.limits = limits;
  } else {
    throw std::invalid_argument(where + ": unknown option \"" + std::string(name) +
                                "\" (name, max_concurrent, rate, burst)");
  }
  if (!ok) throw std::invalid_argument(where + ": bad value for " + std::string(name) + ": \"" + std::string(value) + "\"");
}

void add_key(std::vector<ApiKey>& keys, ApiKey key, const std::string& where) {
  if (auto problem = secret_problem(key.secret)) throw std::invalid_argument(where + ": " + *problem);
  for (const ApiKey& other : keys) {
    if (other.secret == key.secret) throw std::invalid_argument(where + ": the same key is given twice");
    if (other.name == key.name) throw std::invalid_argument(where + ": the key name \"" + key.name + "\" is used twice");
  }
  keys.push_back(std::move(key));
}

}  // namespace

bool constant_time_equals(std::string_view secret, std::string_view presented) {
  // Every byte of `presented` is compared with some byte of `secret`; no early exit.
  unsigned diff = static_cast<unsigned>(secret.size() ^ presented.size());
  if (secret.empty()) return false;
  for (std::size_t i = 0; i < presented.size(); ++i)
    diff |= static_cast<unsigned char>(secret[i % secret.size()]) ^ static_cast<unsigned char>(presented[i]);
  return diff == 0;
}

std::string_view presented_key(std::string_view authorization, std::string_view x_api_key) {
  authorization = trim(authorization);
  constexpr std::string_view kBearer = "bearer ";
  if (authorization.size() > kBearer.size()) {
    bool bearer = true;
    for (std::size_t i = 0; i < kBearer.size(); ++i)
      bearer = bearer && static_cast<char>(std::tolower(static_cast<unsigned char>(authorization[i]))) == kBearer[i];
    if (bearer) return trim(authorization.substr(kBearer.size()));
  }
  return trim(x_api_key);
}

ApiKeys ApiKeys::load(std::string_view key_list, const std::string& key_file) {
  ApiKeys out;
  std::size_t position = 0;
  while (!key_list.empty()) {
    const auto comma = key_list.find(',');
    const std::string_view item = trim(key_list.substr(0, comma));
    key_list = comma == std::string_view::npos ? std::string_view{} : key_list.substr(comma + 1);
    if (item.empty()) continue;
    ++position;
    add_key(out.keys_, ApiKey{"key-" + std::to_string(position), std::string(item), std::nullopt},
            "--api-key (key " + std::to_string(position) + ")");
  }
  if (key_file.empty()) return out;
  std::ifstream in(key_file);
  if (!in) throw std::invalid_argument("cannot read --api-key-file " + key_file);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    // A comment is a line that starts with '#', or what follows " #"; a '#' inside a word is
    // part of it, and refused below, never silently cut off.
    std::string_view text = trim(line);
    if (text.starts_with('#')) continue;
    for (std::size_t at = text.find('#'); at != std::string_view::npos; at = text.find('#', at + 1)) {
      if (text[at - 1] == ' ' || text[at - 1] == '\t') {
        text = trim(text.substr(0, at));
        break;
      }
    }
    if (text.empty()) continue;
    const std::string where = key_file + ":" + std::to_string(number);
    std::istringstream words{std::string(text)};
    ApiKey key;
    words >> key.secret;
    key.name = "key-" + std::to_string(++position);
    for (std::string option; words >> option;) apply_option(key, option, where);
    add_key(out.keys_, std::move(key), where);
  }
  return out;
}

const ApiKey* ApiKeys::match(std::string_view presented) const {
  const ApiKey* found = nullptr;
  for (const ApiKey& key : keys_)  // all of them, whatever matched before
    if (constant_time_equals(key.secret, presented) && found == nullptr) found = &key;
  return found;
}

}  // namespace llmq
