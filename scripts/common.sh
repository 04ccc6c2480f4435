# Shared helpers for the scripts in this folder; sourced, not run.
LLMQ_CACHE=${LLMQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llmq}
export LLMQ_CACHE
log() { echo "[llmq setup] $*" >&2; }
die() { echo "[llmq setup] error: $*" >&2; exit 1; }
# Installs those of the given Debian packages that are not installed yet.
install_debian_packages() {
  local missing=() p sudo=""
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing Debian packages: ${missing[*]}"
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
# Our own C++ builds go through ccache when it is there, with its cache beside the others, so a
# fresh clone (CI) recompiles only what changed. Paths under the checkout are hashed relative to
# it (CCACHE_BASEDIR, and not the working directory: CCACHE_NOHASHDIR), so a clone in another
# folder hits the same entries.
if command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_DIR="$LLMQ_CACHE/ccache"
  CCACHE_BASEDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  export CCACHE_BASEDIR CCACHE_NOHASHDIR=1
fi
