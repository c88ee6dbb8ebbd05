#!/usr/bin/env bash
# The demo command: installs what it needs (scripts/deps.sh), builds the
# binaries and runs cmd/ringcache-demo with its embedded defaults. Extra
# arguments go to the demo (e.g. --readers 8 --shard-size 256MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/deps.sh)"
mkdir -p bin
go build -o bin/ ./cmd/cachenode ./cmd/csi ./cmd/ringcache-demo
exec bin/ringcache-demo --bin bin "$@"
