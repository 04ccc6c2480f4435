#!/usr/bin/env bash
# Prints one line: a cache-key tag, then the ggml CMake options that build llama.cpp's CPU
# backend for the given target. Used by scripts/llama.sh; run it alone to see what a build gets.
#   cpu_features.sh host|x86-64-v3 [amx 0|1]
# "host" reads /proc/cpuinfo and turns on exactly the instruction sets this CPU reports;
# GGML_NATIVE is always off, because -march=native also turns on AMX wherever the CPU has it.
# AMX is on only when asked for (second argument 1) and the CPU has it. LLMQ_CPUINFO reads
# another cpuinfo file (for tests).
set -euo pipefail
target=${1:-host}
amx=${2:-0}

# ggml option -> the /proc/cpuinfo flags it needs, in ggml's order.
options=(GGML_SSE42 GGML_AVX GGML_AVX2 GGML_FMA GGML_F16C GGML_BMI2 GGML_AVX_VNNI GGML_AVX512
         GGML_AVX512_VBMI GGML_AVX512_VNNI GGML_AVX512_BF16 GGML_AMX_TILE GGML_AMX_INT8 GGML_AMX_BF16)
declare -A needs=(
  [GGML_SSE42]="sse4_2" [GGML_AVX]="avx" [GGML_AVX2]="avx2" [GGML_FMA]="fma" [GGML_F16C]="f16c"
  [GGML_BMI2]="bmi2" [GGML_AVX_VNNI]="avx_vnni"
  [GGML_AVX512]="avx512f avx512cd avx512vl avx512dq avx512bw"
  [GGML_AVX512_VBMI]="avx512vbmi" [GGML_AVX512_VNNI]="avx512_vnni" [GGML_AVX512_BF16]="avx512_bf16"
  [GGML_AMX_TILE]="amx_tile" [GGML_AMX_INT8]="amx_int8 amx_tile" [GGML_AMX_BF16]="amx_bf16 amx_tile")

case "$target" in
  host)
    [[ $(uname -m) == x86_64 ]] || { echo "host -DGGML_NATIVE=ON"; exit 0; }  # not x86: ggml's own choice
    flags=" $(grep -m1 '^flags' "${LLMQ_CPUINFO:-/proc/cpuinfo}" | cut -d: -f2) " ;;
  x86-64-v3)
    flags=" sse4_2 avx avx2 fma f16c bmi2 " ;;
  *) echo "unknown LLMQ_LLAMA_CPU '$target' (host or x86-64-v3)" >&2; exit 2 ;;
esac

on=() line="-DGGML_NATIVE=OFF"
for opt in "${options[@]}"; do
  value=ON
  for flag in ${needs[$opt]}; do [[ "$flags" == *" $flag "* ]] || value=OFF; done
  [[ $opt == GGML_AMX_* && $amx != 1 ]] && value=OFF
  line+=" -D$opt=$value"
  [[ $value == ON ]] && on+=("${opt#GGML_}")
done

# The tag names the target and, for the host, a short hash of what was turned on, so the cache
# of one CPU is never taken for another's.
if [[ $target == host ]]; then
  tag="host-$(printf '%s\n' "${on[@]}" | sha256sum | cut -c1-8)"
else
  tag=$target
fi
[[ " ${on[*]} " == *" AMX_INT8 "* ]] && tag+="-amx" || tag+="-noamx"
echo "$tag $line"
