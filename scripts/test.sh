#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/deps.sh for Redis,
# FUSE and MinIO; scripts/kube-deps.sh for etcd, kube-apiserver, kwok, helm
# and kubeconform, all built once per machine), then runs every test against
# the real components (the race detector on for every package but the
# multi-process e2e tests) and every fuzz target for a bounded time.
# Real-component tests fail, not skip, when something is missing
# (RINGCACHE_REQUIRE_REAL=1).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/deps.sh)"
eval "$(scripts/kube-deps.sh)"
export RINGCACHE_REQUIRE_REAL=1

echo "== go vet"
go vet ./...

echo "== unit and real-component tests, race detector on (every package with concurrency)"
go test -race -count=1 -timeout 40m ./pkg/... ./internal/... ./cmd/...

echo "== multi-process e2e tests against real Redis, MinIO, FUSE and kube-apiserver"
go test -count=1 -timeout 40m ./e2e/...

echo "== fuzz targets, ${RINGCACHE_FUZZTIME:-15s} each (their seeds ran above)"
scripts/fuzz.sh
