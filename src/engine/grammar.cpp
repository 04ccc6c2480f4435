#include "engine/grammar.h"

#include <llama-common/json-schema-to-grammar.h>

#include <exception>
#include <string>

#include "engine/llama_model_text.h"

namespace llmq {
namespace {

std::string schema_grammar(const std::string& schema_text, std::string& error) {
  try {
    return json_schema_to_grammar(common_json::parse(schema_text));
  } catch (const std::exception& e) {
    error = e.what();
    // The converter lists its complaints one per line after a heading: keep them on one line.
    for (char& c : error) {
      if (c == '\n') c = ' ';
    }
    return {};
  }
}

}  // namespace

CompiledGrammar compile_grammar(const OutputConstraint& constraint, const llama_vocab* vocab) {
  CompiledGrammar out;
  switch (constraint.kind) {
    case OutputConstraint::Kind::grammar:
      out.gbnf = constraint.source;
      break;
    case OutputConstraint::Kind::json_object: {
      // The same grammar for every request: converted once.
      static const std::string kAnyObject = [] {
        std::string unused;
        return schema_grammar(R"({"type":"object"})", unused);
      }();
      out.gbnf = kAnyObject;
      break;
    }
    case OutputConstraint::Kind::json_schema:
      out.gbnf = schema_grammar(constraint.source, out.error);
      if (!out.error.empty()) out.error = "the schema cannot be enforced: " + out.error;
      break;
  }
  if (!out.error.empty()) return out;
  llama_sampler* sampler = nullptr;
  const std::string errors = llama_errors_of(
      [&] { sampler = llama_sampler_init_grammar(vocab, out.gbnf.c_str(), "root"); });
  if (sampler == nullptr) {
    out.error = "llama.cpp refused the grammar: " + (errors.empty() ? "it does not parse" : errors);
    return out;
  }
  llama_sampler_free(sampler);
  return out;
}

}  // namespace llmq
