#include "engine/llama_model_text.h"

#include "engine/grammar.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>

namespace llmq {
namespace {

thread_local std::string* collected_errors = nullptr;  // set by llama_errors_of

// llama.cpp's own log lines go to our log at debug level: at info they would drown ours.
void forward_llama_log(ggml_log_level level, const char* text, void* /*user*/) {
  std::string_view line(text);
  while (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (line.empty()) return;
  if (level == GGML_LOG_LEVEL_ERROR && collected_errors != nullptr) {
    if (!collected_errors->empty()) collected_errors->append("; ");
    collected_errors->append(line.substr(0, line.find('\n')));
  } else if (level == GGML_LOG_LEVEL_ERROR) {
    spdlog::error("llama.cpp: {}", line);
  } else {
    spdlog::debug("llama.cpp: {}", line);
  }
}

// A model's embedding size from its metadata: llama.cpp reads no hyperparameters of a model
// loaded vocab-only. The output size where the GGUF gives one, else the model's width.
std::int32_t embedding_length_of(const llama_model* model) {
  char arch[64] = {};
  if (llama_model_meta_val_str(model, "general.architecture", arch, sizeof arch) < 0) return 0;
  char value[32] = {};
  for (const char* key : {".embedding_length_out", ".embedding_length"}) {
    if (llama_model_meta_val_str(model, (std::string(arch) + key).c_str(), value, sizeof value) > 0) {
      return static_cast<std::int32_t>(std::strtol(value, nullptr, 10));
    }
  }
  return 0;
}

}  // namespace

void init_llama_runtime() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(forward_llama_log, nullptr);
    llama_backend_init();
  });
}

std::string llama_errors_of(const std::function<void()>& work) {
  std::string errors;
  collected_errors = &errors;
  try {
    work();
  } catch (...) {
    collected_errors = nullptr;
    throw;
  }
  collected_errors = nullptr;
  return errors;
}

LlamaModelText::LlamaModelText(const std::string& path, bool vocab_only) {
  init_llama_runtime();
  llama_model_params params = llama_model_default_params();
  params.vocab_only = vocab_only;
  model_ = llama_model_load_from_file(path.c_str(), params);
  if (model_ == nullptr) throw std::runtime_error("cannot load model " + path);
  vocab_ = llama_model_get_vocab(model_);

  char desc[256] = {};
  llama_model_desc(model_, desc, sizeof desc);
  info_.name = std::filesystem::path(path).stem().string();
  info_.path = path;
  info_.description = desc;
  info_.n_params = vocab_only ? 0 : static_cast<std::int64_t>(llama_model_n_params(model_));
  info_.n_ctx_train = llama_model_n_ctx_train(model_);
  info_.n_vocab = llama_vocab_n_tokens(vocab_);
  info_.n_embd = vocab_only ? embedding_length_of(model_) : llama_model_n_embd_out(model_);
  if (const char* tmpl = llama_model_chat_template(model_, nullptr)) chat_template_ = tmpl;
  info_.has_chat_template = !chat_template_.empty();
}

LlamaModelText::~LlamaModelText() { llama_model_free(model_); }

std::vector<Token> LlamaModelText::tokenize(std::string_view text, bool add_special,
                                         bool parse_special) const {
  const auto len = static_cast<std::int32_t>(text.size());
  std::vector<Token> tokens(text.size() + 2);
  std::int32_t n = llama_tokenize(vocab_, text.data(), len, tokens.data(),
                                  static_cast<std::int32_t>(tokens.size()), add_special, parse_special);
  if (n < 0) {
    tokens.resize(static_cast<std::size_t>(-n));
    n = llama_tokenize(vocab_, text.data(), len, tokens.data(),
                       static_cast<std::int32_t>(tokens.size()), add_special, parse_special);
  }
  tokens.resize(static_cast<std::size_t>(std::max(n, 0)));
  return tokens;
}

std::optional<std::string> LlamaModelText::apply_chat_template(
    const std::vector<ChatMessage>& messages) const {
  if (chat_template_.empty()) return std::nullopt;
  std::vector<llama_chat_message> chat;
  std::size_t total = 0;
  for (const ChatMessage& m : messages) {
    chat.push_back({m.role.c_str(), m.content.c_str()});
    total += m.role.size() + m.content.size();
  }
  std::string out(2 * total + 256, '\0');
  std::int32_t n = llama_chat_apply_template(chat_template_.c_str(), chat.data(), chat.size(),
                                             true, out.data(), static_cast<std::int32_t>(out.size()));
  if (n > static_cast<std::int32_t>(out.size())) {
    out.resize(static_cast<std::size_t>(n));
    n = llama_chat_apply_template(chat_template_.c_str(), chat.data(), chat.size(), true,
                                  out.data(), static_cast<std::int32_t>(out.size()));
  }
  if (n < 0) return std::nullopt;  // a template llama.cpp does not know
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string LlamaModelText::token_piece(Token token) const {
  char buf[256];
  const std::int32_t n = llama_token_to_piece(vocab_, token, buf, sizeof buf, 0, false);
  if (n >= 0) return std::string(buf, static_cast<std::size_t>(n));
  std::string big(static_cast<std::size_t>(-n), '\0');
  const std::int32_t m = llama_token_to_piece(vocab_, token, big.data(), -n, 0, false);
  big.resize(static_cast<std::size_t>(std::max(m, 0)));
  return big;
}

bool LlamaModelText::is_end_of_generation(Token token) const {
  return llama_vocab_is_eog(vocab_, token);
}

CompiledGrammar LlamaModelText::compile_constraint(const OutputConstraint& constraint) const {
  return compile_grammar(constraint, vocab_);
}

}  // namespace llmq
