#!/usr/bin/env bash
# Command (2) of the README, and what CI runs: set up, then pass every test.
#   unit tests (GoogleTest via ctest), release build
#   end-to-end tests (pytest) against the real binary and the real model; what they keep to be
#   looked at (the live page's screenshot) goes to $LLMQ_ARTIFACTS (default build/artifacts/)
#   unit and end-to-end tests under ASan+UBSan, and the unit tests under TSan
#   the Elasticsearch shipping tests against a real local node (scripts/elasticsearch.sh)
#   the libFuzzer targets, $LLMQ_FUZZ_SECONDS (60) each (scripts/fuzz.sh)
# Set LLMQ_SKIP_SANITIZERS=1 to skip the sanitizer builds locally, LLMQ_SKIP_ELASTIC=1 the node,
# LLMQ_SKIP_FUZZ=1 the fuzzing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/common.sh"

bin=$(bash "$here/setup.sh" | tail -n 1)

# Python tools for the end-to-end tests, in a venv cached by the hash of the requirements.
req="$root/requirements-dev.txt"
venv="$LLMQ_CACHE/venv-$(sha256sum "$req" | cut -c1-12)"
if [[ ! -x "$venv/bin/pytest" ]]; then
  log "creating the test venv $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
fi

# ctest, without a line per passing test (failures still print their output).
run_ctest() {
  ctest --test-dir "$1" --output-on-failure -j "$(nproc)" | grep -vE '^ +Start +[0-9]+:|Test +#[0-9]+: .* Passed'
}

log "unit tests (release)"
run_ctest "$root/build/release"

# The Elasticsearch shipping tests against a real node (skipped inside ctest, where no node is
# set). The restart test stops and starts the node itself. LLMQ_SKIP_ELASTIC=1 skips the block.
if [[ "${LLMQ_SKIP_ELASTIC:-0}" != 1 ]]; then
  es_port=${LLMQ_TEST_ELASTIC_PORT:-9250}
  es="$here/elasticsearch.sh"
  log "Elasticsearch integration tests (node on port $es_port)"
  bash "$es" start --port "$es_port" >/dev/null
  trap 'bash "$es" stop --port "$es_port" >/dev/null 2>&1 || true' EXIT
  LLMQ_TEST_ELASTIC_URL="http://127.0.0.1:$es_port" \
  LLMQ_TEST_ELASTIC_STOP="bash '$es' stop --port $es_port >/dev/null" \
  LLMQ_TEST_ELASTIC_START="bash '$es' start --port $es_port >/dev/null" \
    "$root/build/release/tests/unit/llmq_unit_tests" --gtest_filter='ElasticIntegration.*' --gtest_brief=1
  bash "$es" stop --port "$es_port" >/dev/null
  trap - EXIT
fi

# What the tests keep for a person to look at (the live page's screenshot, status-page.png);
# CI keeps this folder.
export LLMQ_ARTIFACTS=${LLMQ_ARTIFACTS:-$root/build/artifacts}
mkdir -p "$LLMQ_ARTIFACTS"

log "end-to-end tests against $bin and the real model (artifacts: $LLMQ_ARTIFACTS)"
LLMQ_BIN="$bin" "$venv/bin/pytest" -q "$root/tests/e2e"

if [[ "${LLMQ_SKIP_SANITIZERS:-0}" != 1 ]]; then
  prefix=$(bash "$here/llama.sh" | tail -n 1)
  for preset in asan tsan; do
    log "unit tests under $preset"
    cmake --preset "$preset" -S "$root" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$root/build/$preset" -j "$(nproc)" >/dev/null
    run_ctest "$root/build/$preset"
  done
  # The whole end-to-end suite once more against the server built with ASan+UBSan: every
  # hostile input of the catalogue then also proves it touches no memory it should not.
  log "end-to-end tests against the ASan+UBSan server"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LLMQ_BIN="$root/build/asan/llmq" "$venv/bin/pytest" -q "$root/tests/e2e"
fi

# The fuzz targets (tests/fuzz/) for a bounded time each, from their seed corpus.
if [[ "${LLMQ_SKIP_FUZZ:-0}" != 1 ]]; then
  bash "$here/fuzz.sh" "${LLMQ_FUZZ_SECONDS:-60}"
fi
