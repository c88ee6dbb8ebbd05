#!/usr/bin/env bash
# The test command: installs what the tests need (scripts/deps.sh for Redis,
# FUSE and MinIO; scripts/kube-deps.sh for etcd, kube-apiserver, kwok, helm
# and kubeconform, all built once per machine), then runs every test against
# the real components. Real-component tests fail, not skip, when something
# is missing (RINGCACHE_REQUIRE_REAL=1).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/deps.sh)"
eval "$(scripts/kube-deps.sh)"
export RINGCACHE_REQUIRE_REAL=1

echo "== go vet"
go vet ./...

echo "== unit tests with the race detector (pure packages)"
go test -race -count=1 ./pkg/ring/... ./pkg/blockstore/... ./internal/bytesize/...

echo "== tests against real Redis, MinIO, FUSE and kube-apiserver; multi-process e2e tests"
go test -count=1 -timeout 40m ./pkg/... ./internal/... ./cmd/... ./e2e/...
