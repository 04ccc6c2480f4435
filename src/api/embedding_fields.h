// The body of POST /v1/embeddings, as OpenAI defines it: `input` (a string or an array of
// strings), `encoding_format` ("float" or "base64"), `dimensions` (checked against the model
// later: only its own size is accepted) and `user`. Token arrays as input are refused.
#pragma once

#include <nlohmann/json.hpp>

#include "api/field_readers.h"
#include "queue/request.h"

namespace llmq {

// Reads them into req.embed_inputs, req.embed_base64, req.dimensions and req.user.
MaybeError parse_embedding_fields(const nlohmann::json& body, ParsedRequest& req);

}  // namespace llmq
