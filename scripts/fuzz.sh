#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ (CMake preset fuzz: clang 14, ASan+UBSan) and runs
# each for a bounded time, starting from a copy of its seed corpus tests/fuzz/corpus/<target>/
# (what a run discovers stays in a temporary folder: the repository's corpus never grows).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        default 60
#   LLMQ_FUZZ_TARGETS="fuzz_sse" scripts/fuzz.sh 300     only some targets
#
# Fails when any target crashes, leaks, hangs or breaks an invariant, after printing the input
# that did it (kept under build/fuzz/crashes/, and in base64 in the log for CI) and the command
# that replays it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
source "$here/common.sh"

seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ && "$seconds" -gt 0 ]] || die "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]"
targets=(${LLMQ_FUZZ_TARGETS:-fuzz_request_validation fuzz_http_request fuzz_sse})

# Only what the fuzz build needs (see tests/fuzz/CMakeLists.txt), so this works before setup.sh.
needed=(clang-14 libclang-rt-14-dev libboost1.81-dev nlohmann-json3-dev)
command -v cmake >/dev/null || needed+=(cmake)
command -v ninja >/dev/null || needed+=(ninja-build)
install_debian_packages "${needed[@]}"

build="$root/build/fuzz"
log "building the fuzz targets (preset fuzz)"
cmake --preset fuzz -S "$root" >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null || cmake --build "$build" -j 1

crashes="$build/crashes"
mkdir -p "$crashes"
work=$(mktemp -d "${TMPDIR:-/tmp}/llmq-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
for target in "${targets[@]}"; do
  bin="$build/tests/fuzz/$target"
  [[ -x "$bin" ]] || die "no fuzz target $target"
  cp -r "$root/tests/fuzz/corpus/$target" "$work/$target"
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$crashes/$target-")
  [[ -f "$root/tests/fuzz/$target.dict" ]] && args+=(-dict="$root/tests/fuzz/$target.dict")
  # Its invariants need two full headers plus a body in one input, past the default 4 KiB.
  [[ "$target" == fuzz_http_request ]] && args+=(-max_len=8192)

  log "fuzzing $target for $seconds s"
  if "$bin" "${args[@]}" "$work/$target" >"$work/$target.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
    cov=$(grep -o 'cov: [0-9]*' "$work/$target.log" | tail -n 1)
    log "$target: clean, ${runs:-?} runs, $cov, corpus $(ls "$work/$target" | wc -l) inputs"
    continue
  fi
  failed+=("$target")
  grep -v '^#[0-9]' "$work/$target.log" | tail -n 60 >&2
  input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/$target.log" | tail -n 1)
  if [[ -n "$input" && -f "$input" ]]; then
    log "$target FAILED; input: $input (replay: $bin $input)"
    log "the input, base64: $(base64 -w 0 "$input" | head -c 16384)"
  else
    log "$target FAILED; see the log above"
  fi
done

((${#failed[@]} == 0)) || die "fuzzing found problems in: ${failed[*]}"
log "fuzzing: ${#targets[@]} targets clean for $seconds s each"
