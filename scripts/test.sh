#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/deps.sh), then
# runs every test against the real components. Real-component tests fail,
# not skip, when something is missing (RINGCACHE_REQUIRE_REAL=1).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/deps.sh)"
export RINGCACHE_REQUIRE_REAL=1

echo "== go vet"
go vet ./...

echo "== unit tests with the race detector (pure packages)"
go test -race -count=1 ./pkg/ring/... ./pkg/blockstore/... ./internal/bytesize/...

echo "== tests against real Redis and MinIO, and multi-process e2e tests"
go test -count=1 -timeout 30m ./pkg/juice/... ./pkg/peer/... ./pkg/node/... ./cmd/... ./e2e/...
