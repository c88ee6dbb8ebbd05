# ringcache: the commands a newcomer needs are `make test` and `make demo`.
.PHONY: test demo build bench bench-go bench-mount bench-warmup bench-ring bench-peer fmt

test:
	scripts/test.sh

build:
	go build -o bin/ ./cmd/...

bench-go:
	go test -run '^$$' -bench . -benchtime 2s ./pkg/ring/ ./pkg/blockstore/ ./pkg/cache/

fmt:
	gofmt -l -w $$(git ls-files '*.go')

demo:
	scripts/demo.sh

bench-mount:
	scripts/bench.sh mount-read --rounds 3 --model-size 256MiB

bench-warmup:
	scripts/bench.sh warmup --model-size 256MiB --origin-bandwidth 50MiB

bench-ring:
	scripts/bench.sh ring

bench-peer:
	scripts/bench.sh peer

bench:
	scripts/bench-all.sh
