#!/usr/bin/env bash
# Sets up everything llmq needs on a fresh Debian 12 machine, then builds it:
#   1. Debian packages (compiler, CMake, Boost, JSON/CLI/TOML/log libraries, GoogleTest, the NATS
#      C client and nats-server for the scale-out mode, Chromium for the live page's browser
#      test); clang and libFuzzer only when fuzzing (scripts/fuzz.sh installs them), to keep this
#      fast
#   2. llama.cpp, built once into the cache (scripts/llama.sh)
#   3. the models, fetched once into the cache (scripts/models.sh)
#   4. llmq itself, with the CMake preset $LLMQ_PRESET (default: release)
# Idempotent: a second run only rebuilds what changed. Prints the binary's path last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/common.sh"

# Tools are looked for on the PATH (they may come from elsewhere than Debian: Node's npm,
# pyenv's python3); libraries by their Debian package.
declare -A TOOL_PACKAGE=([g++]=g++ [cmake]=cmake [ninja]=ninja-build [git]=git [python3]=python3
                         [npm]=npm [sha256sum]=coreutils [ccache]=ccache)
LIB_PACKAGES=(libboost1.81-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev libspdlog-dev
              libgtest-dev libcurl4-openssl-dev libssl-dev prometheus libnats-dev nats-server)

# Debian's Chromium: tests/e2e/test_status_page.py drives it (Playwright, from
# requirements-dev.txt) to load the live page; no browser is ever downloaded from elsewhere.
TEST_PACKAGES=(chromium)

needed=("${LIB_PACKAGES[@]}" "${TEST_PACKAGES[@]}")
for tool in "${!TOOL_PACKAGE[@]}"; do
  command -v "$tool" >/dev/null || needed+=("${TOOL_PACKAGE[$tool]}")
done
python3 -c 'import venv, ensurepip' 2>/dev/null || needed+=(python3-venv)
install_debian_packages "${needed[@]}"

prefix=$(bash "$here/llama.sh" | tail -n 1)
bash "$here/models.sh" >/dev/null

preset=${LLMQ_PRESET:-release}
log "building llmq (preset $preset)"
cmake --preset "$preset" -S "$root" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$root/build/$preset" -j "$(nproc)" >/dev/null || cmake --build "$root/build/$preset" -j 1
echo "$root/build/$preset/llmq"
