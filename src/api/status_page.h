// The live page at GET /: one self-contained HTML file (src/assets/status_page.html, embedded in
// the binary), with its style and script inline, no build step and nothing fetched from
// elsewhere. It holds no data itself, so it is served without an API key; its script polls
// GET /api/v1/status (api/status.h) about once a second and asks for a key on a 401.
#pragma once

#include <string>
#include <string_view>

#include "http/server.h"

namespace llmq {

// The page's Content-Security-Policy: nothing loads but from this origin, and the only inline
// script and style that run are the page's own, named by their SHA-256 (computed from the
// embedded page at start-up, so they cannot drift from it).
std::string status_page_csp(std::string_view page);

// GET / and HEAD /: the page, with that policy, nosniff, and no-cache (a new binary's page is
// seen at once).
http::Response status_page_response(bool keep_alive);

}  // namespace llmq
