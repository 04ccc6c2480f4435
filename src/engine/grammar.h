// Structured output: a client's constraint (GBNF, a JSON Schema, "any JSON object") compiled to
// the GBNF grammar that llama.cpp's grammar sampler enforces token by token.
//
// JSON Schemas go through llama.cpp's own converter (json_schema_to_grammar, from its `common`
// library, built from the same source as the engine): the subset it supports is the subset
// llmq supports (docs/outputs.md, "Structured output").
#pragma once

#include <llama.h>

#include "engine/model_text.h"

namespace llmq {

// Compiles and checks that the grammar parses against `vocab` (a grammar that llama.cpp would
// refuse at sampling time is refused here, with its reason).
CompiledGrammar compile_grammar(const OutputConstraint& constraint, const llama_vocab* vocab);

}  // namespace llmq
