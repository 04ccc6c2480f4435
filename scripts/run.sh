#!/usr/bin/env bash
# Command (1) of the README: set up, build, and run `llmq serve` on the default model.
# Extra arguments go to `llmq serve` (e.g. --port 9000 --slots 4).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(bash "$here/setup.sh" | tail -n 1)
exec "$bin" serve "$@"
