#!/usr/bin/env bash
# Installs what ringcache's tests and demo need on a fresh Debian machine
# and prints the environment that points the tests at it. Slow builds are
# kept in $RINGCACHE_CACHE (default ~/.cache/ringcache), keyed by version,
# so they happen once per machine.
#
#   eval "$(scripts/deps.sh)"
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
CACHE=${RINGCACHE_CACHE:-$HOME/.cache/ringcache}
mkdir -p "$CACHE/bin"

log() { echo "deps: $*" >&2; }

apt_install() {
	local missing=()
	for pkg in "$@"; do
		dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	log "apt-get install ${missing[*]}"
	local sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
}

apt_install redis-server fuse3

# redis-server from the package starts a system instance; tests run their
# own on free loopback ports and do not need it.
if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server >/dev/null 2>&1 || true; fi

minio_dir="$CACHE/bin/minio-$MINIO_VERSION"
if [ ! -x "$minio_dir/minio" ]; then
	log "building MinIO $MINIO_VERSION (once per machine, several minutes)"
	rm -rf "$minio_dir.tmp"
	mkdir -p "$minio_dir.tmp"
	( cd "$CACHE" && GOBIN="$minio_dir.tmp" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION" >&2 )
	mv "$minio_dir.tmp" "$minio_dir"
fi

echo "export RINGCACHE_CACHE='$CACHE'"
echo "export RINGCACHE_REDIS_SERVER='$(command -v redis-server)'"
echo "export RINGCACHE_MINIO='$minio_dir/minio'"
