# Shared helpers for the scripts in this folder; sourced, not run.
LLMQ_CACHE=${LLMQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmq}
export LLMQ_CACHE
log() { echo "[llmq setup] $*" >&2; }
die() { echo "[llmq setup] error: $*" >&2; exit 1; }
