#!/usr/bin/env bash
# Runs every Go native fuzz target in the module for a bounded time each
# (RINGCACHE_FUZZTIME, default 15s). Their seed corpora (f.Add seeds and
# testdata/fuzz/) also run as ordinary tests in every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${RINGCACHE_FUZZTIME:-15s}
found=0
while IFS= read -r file; do
	dir=$(dirname "$file")
	for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		found=$((found + 1))
		echo "fuzz: $dir $name for $fuzztime"
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"
	done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true)
echo "fuzz: $found targets"
[ "$found" -gt 0 ]
