#!/usr/bin/env bash
# make bench: runs every benchmark with its baseline, side by side, on a
# local deployment (installing what it needs like the tests do), keeps the
# raw results in docs/bench/ (<name>.json, and the printed tables in
# latest.txt with the machine and the command), draws the charts there and
# regenerates the summary table of docs/benchmarks.md. Sizes are flags of
# ringcache-bench; BENCH_ARGS_<NAME> passes extra ones, e.g.
#   BENCH_ARGS_STORM="--readers 16 --shard-size 1GiB" make bench
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/deps.sh)"
mkdir -p bin docs/bench
go build -o bin/ ./cmd/cachenode ./cmd/csi ./cmd/ringcache-bench
out=docs/bench/latest.txt
{
	echo "# ringcache-bench, $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(go version | cut -d' ' -f3)"
	echo "# command: make bench"
} > "$out"
run() {
	local name=$1; shift
	local var="BENCH_ARGS_$(echo "$name" | tr 'a-z-' 'A-Z_')"
	echo "== $name" | tee -a "$out"
	# shellcheck disable=SC2086
	bin/ringcache-bench "$name" --json "docs/bench/$name.json" "$@" ${!var:-} 2>/dev/null | tee -a "$out"
}
run ring
run peer --bin bin
run warmup --bin bin
run mount-read --bin bin
run storm --bin bin
run failover --bin bin --readers 4 --shard-size 64MiB
echo "== go benchmarks" | tee -a "$out"
go test -run '^$' -bench . -benchmem ./pkg/ring/ ./pkg/blockstore/ ./pkg/cache/ 2>&1 | grep -E '^(Benchmark|ok)' | tee -a "$out"
echo "== charts" | tee -a "$out"
bin/ringcache-bench report --dir docs/bench --doc docs/benchmarks.md | tee -a "$out"
