// URLs in messages and logs: credentials never shown.
#pragma once

#include <string>
#include <string_view>

namespace llmq {

// "https://user:pw@host:9200/x" -> "https://***@host:9200/x". The last '@' before any query is
// taken (not just within the RFC authority) so an unencoded '/' in a password still gets masked.
std::string mask_url_credentials(std::string_view url);

}  // namespace llmq
