#!/usr/bin/env bash
# Fetches and builds llama.cpp (library + llama-server + llama-bench) into the cache, keyed by
# version, and prints the install prefix on its last line.
#
# The source comes from the npm package node-llama-cpp, which carries the llama.cpp release it
# was built against as a git bundle. Override with:
#   LLMQ_LLAMA_SRC=/path/to/llama.cpp   build that source tree instead (cached by its path + HEAD)
#   LLMQ_LLAMA_PREFIX=/path/to/prefix   use an installed `llama` CMake package as is (nothing built);
#                                       it needs llmq-common/ beside it, as install_common leaves it
#
# Which CPU the build targets (never GGML_NATIVE: see docs/architecture.md, "The CPU"):
#   LLMQ_LLAMA_CPU=host (default)   the instruction sets this machine's CPU reports, spelled out
#                                   as ggml options; the cache key names them, so a machine with
#                                   another CPU builds its own copy instead of reusing this one
#   LLMQ_LLAMA_CPU=x86-64-v3        a fixed baseline (AVX2, FMA, F16C, BMI2) that runs on any
#                                   x86-64 server CPU of the last decade: for images and shared builds
#   LLMQ_LLAMA_AMX=1                also compile llama.cpp's AMX kernels where the CPU has AMX; off
#                                   by default, since they fault on some virtualised Xeons
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"

NLC_VERSION=3.21.1   # npm node-llama-cpp version that carries the bundle
LLAMA_TAG=v0.4.0     # llama.cpp release inside it (checked against llama.cpp.info.json)

if [[ -n "${LLMQ_LLAMA_PREFIX:-}" ]]; then
  [[ -f "$LLMQ_LLAMA_PREFIX/lib/cmake/llama/llama-config.cmake" || -f "$LLMQ_LLAMA_PREFIX/lib64/cmake/llama/llama-config.cmake" ]] \
    || die "LLMQ_LLAMA_PREFIX=$LLMQ_LLAMA_PREFIX holds no llama CMake package (lib/cmake/llama/llama-config.cmake)"
  [[ -f "$LLMQ_LLAMA_PREFIX/llmq-common/lib/libllama-common.a" ]] \
    || die "LLMQ_LLAMA_PREFIX=$LLMQ_LLAMA_PREFIX has no llmq-common/ (llama.cpp's common library and its json-schema-to-grammar.h, json.h headers)"
  echo "$LLMQ_LLAMA_PREFIX"; exit 0
fi

read -r cpu_tag cpu_options < <(bash "$here/cpu_features.sh" "${LLMQ_LLAMA_CPU:-host}" "${LLMQ_LLAMA_AMX:-0}") \
  || die "cannot choose the CPU features to build llama.cpp for"

if [[ -n "${LLMQ_LLAMA_SRC:-}" ]]; then
  src=$(cd "$LLMQ_LLAMA_SRC" && pwd)
  key="custom-$(echo "$src" | sha256sum | cut -c1-12)-$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo nogit)"
else
  key="$LLAMA_TAG-nlc$NLC_VERSION"
fi
key="$key-$cpu_tag"
root="$LLMQ_CACHE/llama.cpp/$key"
prefix="$root/install"
# One build per key at a time: a second caller (another checkout's set-up, a test run) waits for
# the first and then finds its build complete, instead of racing it in the same build tree.
mkdir -p "$LLMQ_CACHE/llama.cpp"
exec 9>"$root.lock"
flock 9

# llama.cpp's `common` library (llama-common), for its JSON-schema to GBNF converter: the static
# libraries and the two headers that declare it, under $prefix/llmq-common. Built by the same
# build as llama-server (which links it); a cache made before llmq used it gets it added here.
install_common() {
  local out="$prefix/llmq-common"
  [[ -f "$out/.complete" ]] && return 0
  [[ -d "$root/build" && -f "$src/common/json-schema-to-grammar.h" ]] \
    || die "the llama.cpp build in $root has no common library; remove $root to rebuild it"
  cmake --build "$root/build" --target llama-common -j "$(nproc)" >"$root/build-common.log" 2>&1 \
    || { tail -30 "$root/build-common.log" >&2; die "llama.cpp common build failed (log: $root/build-common.log)"; }
  mkdir -p "$out/lib"
  cp "$root/build/common/libllama-common.a" "$root/build/common/libllama-common-base.a" "$out/lib/"
  mkdir -p "$out/include/llama-common"
  cp "$src/common/json.h" "$src/common/json-schema-to-grammar.h" "$out/include/llama-common/"
  touch "$out/.complete"
}

if [[ -f "$prefix/.complete" ]]; then
  [[ -n "${LLMQ_LLAMA_SRC:-}" ]] || src="$root/src"
  install_common
  echo "$prefix"; exit 0
fi

mkdir -p "$root"
if [[ -z "${LLMQ_LLAMA_SRC:-}" ]]; then
  src="$root/src"
  if [[ ! -f "$src/CMakeLists.txt" ]]; then
    log "fetching llama.cpp $LLAMA_TAG from npm node-llama-cpp@$NLC_VERSION"
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null && tar xzf node-llama-cpp-*.tgz)
    tag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tag"])' "$tmp/package/llama/llama.cpp.info.json")
    [[ "$tag" == "$LLAMA_TAG" ]] || die "node-llama-cpp@$NLC_VERSION carries llama.cpp $tag, expected $LLAMA_TAG"
    rm -rf "$src"
    git clone --quiet "$tmp/package/llama/gitRelease.bundle" "$src" 2>/dev/null
  fi
fi

log "building llama.cpp ($key) into $prefix; takes several minutes on 2 cores, once"
log "CPU features: $cpu_options"
# shellcheck disable=SC2086  # cpu_options is a list of -D options
cmake -S "$src" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release $cpu_options \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DLLAMA_TOOLS_INSTALL=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DCMAKE_INSTALL_PREFIX="$prefix" >"$root/configure.log" 2>&1 \
  || { tail -30 "$root/configure.log" >&2; die "llama.cpp configure failed (log: $root/configure.log)"; }
cmake --build "$root/build" --target llama ggml llama-server llama-bench -j "$(nproc)" >"$root/build.log" 2>&1 \
  || { tail -30 "$root/build.log" >&2; die "llama.cpp build failed (log: $root/build.log)"; }
cmake --install "$root/build" >"$root/install.log" 2>&1 \
  || { tail -30 "$root/install.log" >&2; die "llama.cpp install failed (log: $root/install.log)"; }
mkdir -p "$prefix/bin"
cp "$root/build/bin/llama-server" "$root/build/bin/llama-bench" "$prefix/bin/"
echo "$cpu_options" > "$prefix/cpu-features.txt"
# One line naming the source, read by llmq's CMake for `llmq --version` and llmq_build_info.
if [[ -n "${LLMQ_LLAMA_SRC:-}" ]]; then
  echo "$src ($key)" > "$prefix/llmq-llama-source.txt"
else
  echo "$LLAMA_TAG from node-llama-cpp $NLC_VERSION ($cpu_tag)" > "$prefix/llmq-llama-source.txt"
fi
install_common
touch "$prefix/.complete"
echo "$prefix"
