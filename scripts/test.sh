#!/usr/bin/env bash
# Command (2) of the README, and what CI runs: set up, then pass every test.
#   unit tests (GoogleTest via ctest), release build
#   end-to-end tests (pytest) against the real binary and the real model
#   unit tests under ASan+UBSan, and the concurrent parts under TSan
# Set LLMQ_SKIP_SANITIZERS=1 to skip the sanitizer builds locally.
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

log "end-to-end tests against $bin and the real model"
LLMQ_BIN="$bin" "$venv/bin/pytest" -q "$root/tests/e2e"

if [[ "${LLMQ_SKIP_SANITIZERS:-0}" != 1 ]]; then
  prefix=$(bash "$here/llama.sh" | tail -n 1)
  for preset in asan tsan; do
    log "unit tests under $preset"
    cmake --preset "$preset" -S "$root" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$root/build/$preset" -j "$(nproc)" --target llmq_unit_tests >/dev/null
    run_ctest "$root/build/$preset"
  done
fi
