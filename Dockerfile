# syntax=docker/dockerfile:1
#
# The ringcache image: both binaries, cachenode (cache node, prefetch
# controller, operator commands) and csi (CSI node plugin, CSI controller,
# and the `csi mount` JuiceFS client), on Debian slim with FUSE and nsenter.
#
#   docker build -t ghcr.io/ringcache/ringcache:0.1.0 .
#
# The chart (charts/ringcache) runs every component from this one image.
#
# The binaries are linked statically: the CSI node plugin copies the csi
# binary to the host and starts its mount processes there through nsenter,
# so they run against the host's libraries, whatever its distribution.
# JuiceFS needs cgo (zstd, lz4, SQLite), so this is cgo with a static glibc
# link, as JuiceFS's own STATIC build does; netgo and osusergo keep glibc's
# NSS (which cannot be linked statically) out of it.

ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Modules first, so that source edits do not re-download them. go.mod
# replaces several modules with juicedata forks; they are fetched the same
# way (GONOSUMDB because the forks' pseudo-versions are not in sum.golang.org).
ENV GONOSUMDB=github.com/juicedata GOFLAGS=-mod=readonly
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    mkdir -p /out && \
    CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo,sqlite_omit_load_extension \
      -ldflags "-s -w -linkmode external -extldflags -static" \
      -o /out/ ./cmd/cachenode ./cmd/csi && \
    /out/cachenode help >/dev/null && /out/csi help >/dev/null

FROM debian:${DEBIAN_RELEASE}-slim
# fuse3: fusermount3 for the JuiceFS mounts; util-linux: nsenter (the CSI
# node plugin's launcher) and mount/umount; ca-certificates: HTTPS object
# stores and metadata engines.
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      fuse3 util-linux mount ca-certificates && \
    rm -rf /var/lib/apt/lists/*
COPY --from=build /out/cachenode /out/csi /usr/local/bin/
LABEL org.opencontainers.image.title="ringcache" \
      org.opencontainers.image.description="Shared NVMe block cache for JuiceFS model volumes, with a CSI driver" \
      org.opencontainers.image.source="https://github.com/ringcache/ringcache"
# The cache node and the CSI node plugin run as root (hostPath data, FUSE,
# nsenter); the chart runs the controllers as 65532 through their
# securityContext.
ENTRYPOINT []
CMD ["cachenode", "help"]
