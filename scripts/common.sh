# Shared helpers for the scripts in this folder; sourced, not run.
LLMQ_CACHE=${LLMQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmq}
export LLMQ_CACHE
log() { echo "[llmq setup] $*" >&2; }
die() { echo "[llmq setup] error: $*" >&2; exit 1; }
# Our own C++ builds go through ccache when it is there, with its cache beside the others, so a
# fresh clone (CI) recompiles only what changed.
if command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_DIR="$LLMQ_CACHE/ccache"
fi
