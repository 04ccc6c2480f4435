#!/usr/bin/env bash
# A single local Elasticsearch node for development and the integration tests.
#   scripts/elasticsearch.sh start [--port N] [--data DIR]   start (or find running), print URL and pid
#   scripts/elasticsearch.sh stop  [--port N] [--data DIR]   stop the node started with those options
#   scripts/elasticsearch.sh fetch                            only download and unpack (prints its home)
#
# The distribution is Elasticsearch's integ-test-zip from Maven Central
# (org.elasticsearch.distribution.integ-test-zip:elasticsearch:<version>:zip): the smallest build
# that carries security (so it can be switched off) but no bundled JDK, so a Temurin JDK >= 21
# from /usr/lib/jvm is used. It is unpacked once into $LLMQ_CACHE/elasticsearch/<version>/.
# Maven Central's maven-metadata.xml for that artifact stops at 8.x; 9.5.4 is the newest 9.x zip
# it serves (9.5.5 and 9.5.6 exist as clients only). Override with LLMQ_ES_VERSION.
#
# It has no data-streams module: a name like logs-llmq.requests-default becomes a plain index
# here, which is enough to test _bulk create with ids.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"

ES_VERSION=${LLMQ_ES_VERSION:-9.5.4}
ES_URL="https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip"
ES_ROOT="$LLMQ_CACHE/elasticsearch/$ES_VERSION"
ES_HOME="$ES_ROOT/elasticsearch-$ES_VERSION"
HEAP=${LLMQ_ES_HEAP:-512m}
START_TIMEOUT_S=${LLMQ_ES_START_TIMEOUT_S:-120}

fetch() {
  [[ -f "$ES_ROOT/.complete" ]] && return 0
  log "fetching Elasticsearch $ES_VERSION (integ-test-zip) from Maven Central"
  mkdir -p "$ES_ROOT"
  local tmp; tmp=$(mktemp -d)
  curl -fsSL --retry 3 -o "$tmp/es.zip" "$ES_URL" || { rm -rf "$tmp"; die "download failed: $ES_URL"; }
  rm -rf "$ES_HOME"
  if command -v unzip >/dev/null; then
    unzip -q "$tmp/es.zip" -d "$ES_ROOT" || { rm -rf "$tmp"; die "unzip failed"; }
  else
    # Python's zipfile drops the executable bits: give them back to the launchers.
    python3 -m zipfile -e "$tmp/es.zip" "$ES_ROOT" || { rm -rf "$tmp"; die "unzip failed"; }
    chmod +x "$ES_HOME"/bin/*
  fi
  rm -rf "$tmp"
  [[ -x "$ES_HOME/bin/elasticsearch" ]] || die "no bin/elasticsearch in the zip"
  touch "$ES_ROOT/.complete"
}

# Newest Temurin JDK whose major version is at least 21 (Elasticsearch 9 needs 21+).
find_jdk() {
  local best="" best_major=0 dir major
  for dir in /usr/lib/jvm/temurin-*; do
    [[ -x "$dir/bin/java" ]] || continue
    major=$(basename "$dir" | sed -E 's/^temurin-([0-9]+).*/\1/')
    [[ "$major" =~ ^[0-9]+$ ]] || continue
    if ((major >= 21 && major > best_major)); then best=$dir; best_major=$major; fi
  done
  [[ -n "$best" ]] || die "no Temurin JDK >= 21 under /usr/lib/jvm/temurin-* (Elasticsearch 9 needs Java 21+)"
  echo "$best"
}

health_ok() {
  curl -fsS --max-time 2 "http://127.0.0.1:$port/_cluster/health" 2>/dev/null | grep -qE '"status":"(green|yellow)"'
}

# Elasticsearch refuses to run as root, so root runs it as `nobody`. nobody cannot enter /root,
# where the cache usually is: root's nodes run from a copy of the home and keep their data under
# /var/tmp/llmq-elasticsearch/ instead (the copy is made once per version).
as_root() { [[ $(id -u) -eq 0 ]]; }
RUN_BASE=$LLMQ_CACHE/elasticsearch
as_root && RUN_BASE=/var/tmp/llmq-elasticsearch

run_home() {
  if ! as_root; then echo "$ES_HOME"; return 0; fi
  local copy="$RUN_BASE/$ES_VERSION"
  if [[ ! -f "$copy/.complete" ]]; then
    rm -rf "$copy"; mkdir -p "$copy"
    cp -a "$ES_HOME" "$copy/" && chmod -R a+rX "$RUN_BASE" && touch "$copy/.complete"
  fi
  echo "$copy/elasticsearch-$ES_VERSION"
}

run_as_node_user() {
  if as_root; then
    chown -R nobody:nogroup "$data"
    setpriv --reuid=nobody --regid=nogroup --clear-groups test -w "$data" \
      || die "user nobody cannot write $data (as root, pick a --data outside /root)"
    setpriv --reuid=nobody --regid=nogroup --clear-groups --reset-env env \
      PATH="$PATH" ES_JAVA_HOME="$ES_JAVA_HOME" ES_JAVA_OPTS="$ES_JAVA_OPTS" \
      ES_PATH_CONF="$ES_PATH_CONF" ES_TMPDIR="$ES_TMPDIR" "$@"
  else
    "$@"
  fi
}

start() {
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null && health_ok; then
    echo "http://127.0.0.1:$port"; cat "$pidfile"; return 0
  fi
  fetch
  local home; home=$(run_home)
  ES_JAVA_HOME=$(find_jdk)
  mkdir -p "$data/data" "$data/logs" "$data/tmp"
  # A private copy of config/: the node writes its keystore there.
  if [[ ! -d "$data/config" ]]; then cp -r "$home/config" "$data/config"; fi
  export ES_JAVA_HOME ES_PATH_CONF="$data/config" ES_TMPDIR="$data/tmp"
  export ES_JAVA_OPTS="-Xms$HEAP -Xmx$HEAP ${ES_JAVA_OPTS:-}"
  rm -f "$pidfile"
  log "starting Elasticsearch $ES_VERSION on 127.0.0.1:$port (data $data, JDK $ES_JAVA_HOME)"
  run_as_node_user "$home/bin/elasticsearch" -d -p "$pidfile" \
    -Ecluster.name=llmq-dev -Enode.name=llmq-dev -Enetwork.host=127.0.0.1 -Ehttp.port="$port" \
    -Ediscovery.type=single-node -Expack.security.enabled=false \
    -Ecluster.routing.allocation.disk.threshold_enabled=false \
    -Epath.data="$data/data" -Epath.logs="$data/logs" >"$data/start.out" 2>&1 \
    || { tail -n 20 "$data/start.out" >&2; die "elasticsearch did not start; see $data/start.out"; }
  local waited=0
  until health_ok; do
    ((waited < START_TIMEOUT_S)) || die "no healthy cluster on port $port after ${START_TIMEOUT_S}s; see $data/logs/llmq-dev.log"
    sleep 1; waited=$((waited + 1))
  done
  log "Elasticsearch is up after ${waited}s"
  echo "http://127.0.0.1:$port"
  cat "$pidfile"
}

stop() {
  [[ -f "$pidfile" ]] || { log "no pid file $pidfile: nothing to stop"; return 0; }
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
      if ((waited >= 60)); then kill -9 "$pid" 2>/dev/null || true; break; fi
      sleep 0.5; waited=$((waited + 1))
    done
  fi
  rm -f "$pidfile"
  log "stopped Elasticsearch (pid $pid)"
}

cmd=${1:-}; shift || true
port=9200
data=""
while (($#)); do
  case "$1" in
    --port) port=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    *) die "unknown option $1 (usage: $0 start|stop [--port N] [--data DIR])" ;;
  esac
done
[[ "$port" =~ ^[0-9]+$ ]] || die "--port wants a number"
data=${data:-$RUN_BASE/node-$port}
[[ "$cmd" == start ]] && mkdir -p "$data"
[[ -d "$data" ]] && data=$(cd "$data" && pwd)
pidfile="$data/elasticsearch.pid"

case "$cmd" in
  start) start ;;
  stop) stop ;;
  fetch) fetch; echo "$ES_HOME" ;;
  *) die "usage: $0 start|stop|fetch [--port N] [--data DIR]" ;;
esac
