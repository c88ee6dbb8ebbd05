#!/usr/bin/env bash
# Runs one ringcache-bench benchmark on a local deployment (installs what it
# needs like the tests do): scripts/bench.sh mount-read [flags]
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/deps.sh)"
mkdir -p bin
go build -o bin/ ./cmd/cachenode ./cmd/csi ./cmd/ringcache-bench
exec bin/ringcache-bench "$1" --bin bin "${@:2}"
