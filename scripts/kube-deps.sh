#!/usr/bin/env bash
# Builds the Kubernetes pieces ringcache's chart and controller tests need on
# a fresh Debian machine, from Go modules only, and prints the environment
# that points the tests at them:
#
#   eval "$(scripts/kube-deps.sh)"
#
#   etcd                          v3.7.3  (the 3.7 line Kubernetes 1.37 is tested with)
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl   v1.37.2
#   kwok, kwokctl                 v0.8.0
#   helm                          v3.22.0
#   kubeconform                   v0.8.0, with offline strict JSON schemas
#                                 generated from Kubernetes v1.37.2's swagger.json
#
# Each tool is built once per machine into
# $RINGCACHE_CACHE/bin/<tool>-<version>/ (default ~/.cache/ringcache) and
# reused after that; a cold run takes about a quarter of an hour on 2 cores,
# almost all of it kube-apiserver. Logs go to stderr, the export lines to
# stdout. KUBEBUILDER_ASSETS is the directory controller-runtime's envtest
# wants (etcd, kube-apiserver, kubectl).
#
# A kwok cluster (fake nodes, real control plane, ~5 s to start):
#   KWOK_WORKDIR=$dir "$RINGCACHE_KWOKCTL" create cluster --name NAME --runtime binary \
#     --kube-apiserver-binary "$RINGCACHE_KUBE_APISERVER" --etcd-binary "$RINGCACHE_ETCD" \
#     --kube-controller-manager-binary "$RINGCACHE_KUBE_CONTROLLER_MANAGER" \
#     --kube-scheduler-binary "$RINGCACHE_KUBE_SCHEDULER" \
#     --kwok-controller-binary "$RINGCACHE_KWOK" --wait 2m
#   (kubeconfig: $dir/clusters/NAME/kubeconfig.yaml; `kwokctl delete cluster
#   --name NAME` stops it. Components listen on 0.0.0.0 unless --config names
#   a KwokctlConfiguration with options.bindAddress: 127.0.0.1. `kwokctl
#   kubectl` runs the first kubectl on PATH, else $KWOK_KUBECTL_BINARY.)
# Offline manifest validation:
#   "$RINGCACHE_KUBECONFORM" -strict -schema-location "$RINGCACHE_K8S_SCHEMAS" \
#     -kubernetes-version 1.37.2 -summary FILE...
set -euo pipefail

KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
KUBECONFORM_VERSION=v0.8.0

KUBE_MINOR=${KUBE_VERSION#v1.}
KUBE_MINOR=${KUBE_MINOR%%.*}

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${RINGCACHE_CACHE:-$HOME/.cache/ringcache}
BIN=$CACHE/bin
mkdir -p "$BIN" "$CACHE/src"

log() { echo "kube-deps: $*" >&2; }

# Builds share two cores with whatever else runs here: keep them polite,
# static (no cgo, as the upstream release binaries are) and outside any
# go.work.
export CGO_ENABLED=0 GOWORK=off
gobuild() { nice -n 10 go "$@" >&2; }

# Two runs at once (say two test commands) would build everything twice;
# the second waits for the first and then finds the binaries.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$BIN/.kube-deps.lock"
	flock 9
fi

# have DIR NAME... is true when DIR holds every named executable.
have() {
	local dir=$1
	shift
	for name in "$@"; do
		[ -x "$dir/$name" ] || return 1
	done
}

# build_once DIR FUNC NAME... runs FUNC TMPDIR unless DIR already holds the
# named executables, then moves TMPDIR into place, so an interrupted build
# leaves nothing that looks finished.
build_once() {
	local dir=$1 fn=$2
	shift 2
	have "$dir" "$@" && return 0
	log "building $(basename "$dir") (once per machine)"
	local start=$SECONDS
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	"$fn" "$dir.tmp"
	have "$dir.tmp" "$@" || { log "$(basename "$dir"): build did not produce $*"; exit 1; }
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	log "built $(basename "$dir") in $((SECONDS - start))s"
}

# module_field MODULE@VERSION FIELD prints a field (Dir, GoMod, ...) of
# `go mod download -json`, downloading the module if needed.
module_field() {
	(cd "$CACHE" && nice -n 10 go mod download -json "$1") |
		sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}$/\1/p"
}

# --- etcd ----------------------------------------------------------------
# Built rather than Debian's etcd-server, which is 3.4.23 (three minor lines
# behind what Kubernetes 1.37 is tested with) and starts a system service.
# etcd's own main module has replace directives, so `go install
# go.etcd.io/etcd/v3@...` refuses it; a two-file module that calls
# etcdmain.Main (all etcd's main.go does) builds the same server in under a
# minute.
build_etcd() {
	local src=$CACHE/src/etcd-$ETCD_VERSION
	rm -rf "$src"
	mkdir -p "$src"
	cat >"$src/go.mod" <<EOF
module ringcache.local/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
	cat >"$src/main.go" <<'EOF'
// Command etcd is etcd's server, built from the go.etcd.io/etcd/server/v3 module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
	(cd "$src" && gobuild mod tidy && gobuild build -trimpath -ldflags '-s -w' -o "$1/etcd" .)
}
ETCD_DIR=$BIN/etcd-$ETCD_VERSION
build_once "$ETCD_DIR" build_etcd etcd

# --- kube-apiserver, kube-controller-manager, kube-scheduler, kubectl ------
# k8s.io/kubernetes points its 33 staging modules (k8s.io/api, client-go,
# ...) at ./staging with replace directives, which `go install` refuses. A
# wrapper module that requires k8s.io/kubernetes and replaces each staging
# module by its published v0.X.Y release builds the real commands. kubectl
# comes from the same build: the one Debian's google-cloud-cli ships
# (/usr/bin/kubectl) is 1.32, outside kubectl's one-minor skew with 1.37.
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
build_kubernetes() {
	local src=$CACHE/src/kubernetes-$KUBE_VERSION
	local staging_version=v0.${KUBE_VERSION#v1.}
	local gomod
	gomod=$(module_field "k8s.io/kubernetes@$KUBE_VERSION" GoMod)
	local staging
	staging=$(sed -n 's|^[[:space:]]*\(k8s.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*|\1|p' "$gomod")
	[ "$(echo "$staging" | wc -l)" -ge 30 ] || { log "found only these staging modules in $gomod: $staging"; exit 1; }
	rm -rf "$src"
	mkdir -p "$src"
	{
		echo "module ringcache.local/kubernetes"
		echo
		echo "go 1.26.0"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		echo "replace ("
		for m in $staging; do echo "	$m => $m $staging_version"; done
		echo ")"
	} >"$src/go.mod"
	{
		echo "//go:build tools"
		echo
		echo "// Package tools keeps the Kubernetes commands this module builds in go.mod."
		echo "package tools"
		echo
		echo "import ("
		for c in "${KUBE_COMMANDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
		echo ")"
	} >"$src/tools.go"
	# The version Kubernetes' own build stamps in (kwokctl reads it to pick
	# each component's flags).
	local ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$KUBE_MINOR -X $pkg.gitTreeState=clean"
	done
	local pkgs=()
	for c in "${KUBE_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	# -e: some test-only dependencies of k8s.io/kubernetes do not resolve;
	# the commands' own ones do.
	(cd "$src" && gobuild mod tidy -e && gobuild build -trimpath -ldflags "$ldflags" -o "$1/" "${pkgs[@]}")
}
KUBE_DIR=$BIN/kubernetes-$KUBE_VERSION
build_once "$KUBE_DIR" build_kubernetes "${KUBE_COMMANDS[@]}"

# --- kwok, kwokctl -------------------------------------------------------
# kwokctl reads each component's version from its binary to choose flags;
# its own default Kubernetes version (used for the rest, e.g. the secure
# port) is set to the one built above, so no --kube-version is needed.
build_kwok() {
	(cd "$CACHE" && GOBIN=$1 gobuild install -trimpath \
		-ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${KUBE_VERSION#v}" \
		"sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION")
}
KWOK_DIR=$BIN/kwok-$KWOK_VERSION
build_once "$KWOK_DIR" build_kwok kwok kwokctl

# --- helm ----------------------------------------------------------------
# The ldflags are the ones helm's Makefile sets: its version, and the
# Kubernetes version `helm template` and `helm lint` assume (the Makefile
# takes that of helm's client-go, v0.37; here the one built above).
build_helm() {
	local h=helm.sh/helm/v3
	(cd "$CACHE" && GOBIN=$1 gobuild install -trimpath \
		-ldflags "-s -w -X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$KUBE_MINOR -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$KUBE_MINOR" \
		"$h/cmd/helm@$HELM_VERSION")
}
HELM_DIR=$BIN/helm-$HELM_VERSION
build_once "$HELM_DIR" build_helm helm

# --- kubeconform and its schemas -------------------------------------------
build_kubeconform() {
	(cd "$CACHE" && GOBIN=$1 gobuild install -trimpath \
		-ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
		"github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION")
}
KUBECONFORM_DIR=$BIN/kubeconform-$KUBECONFORM_VERSION
build_once "$KUBECONFORM_DIR" build_kubeconform kubeconform

# kubeconform downloads its schemas unless -schema-location names local
# ones. internal/tools/k8sschemas (standard library only) writes them from
# the swagger.json in the k8s.io/kubernetes module; they are made again when
# that program changes.
SCHEMAS_DIR=$BIN/k8s-schemas-$KUBE_VERSION
generator=$REPO/internal/tools/k8sschemas
generator_sum=$(cat "$generator"/*.go | sha256sum | cut -d' ' -f1)
if [ ! -f "$SCHEMAS_DIR/.generator-sha256" ] || [ "$(cat "$SCHEMAS_DIR/.generator-sha256")" != "$generator_sum" ]; then
	log "generating Kubernetes $KUBE_VERSION JSON schemas"
	start=$SECONDS
	swagger=$(module_field "k8s.io/kubernetes@$KUBE_VERSION" Dir)/api/openapi-spec/swagger.json
	rm -rf "$SCHEMAS_DIR.tmp"
	mkdir -p "$SCHEMAS_DIR.tmp"
	# Built in a module of its own, so whatever state ringcache's go.mod is in
	# does not matter.
	src=$CACHE/src/k8sschemas
	rm -rf "$src"
	mkdir -p "$src"
	cp "$generator"/*.go "$src/"
	printf 'module ringcache.local/k8sschemas\n\ngo 1.26.0\n' >"$src/go.mod"
	(cd "$src" && gobuild run . -swagger "$swagger" -out "$SCHEMAS_DIR.tmp" -kubernetes-version "$KUBE_VERSION")
	echo "$generator_sum" >"$SCHEMAS_DIR.tmp/.generator-sha256"
	rm -rf "$SCHEMAS_DIR"
	mv "$SCHEMAS_DIR.tmp" "$SCHEMAS_DIR"
	log "generated schemas in $((SECONDS - start))s"
fi

# --- envtest assets ------------------------------------------------------
ASSETS=$BIN/kubebuilder-assets-$KUBE_VERSION-etcd-$ETCD_VERSION
mkdir -p "$ASSETS"
for target in "$ETCD_DIR/etcd" "$KUBE_DIR/kube-apiserver" "$KUBE_DIR/kubectl"; do
	link=$ASSETS/$(basename "$target")
	[ "$(readlink "$link" 2>/dev/null)" = "$target" ] || ln -sfn "$target" "$link"
done

echo "export RINGCACHE_CACHE='$CACHE'"
echo "export KUBEBUILDER_ASSETS='$ASSETS'"
echo "export RINGCACHE_ETCD='$ETCD_DIR/etcd'"
echo "export RINGCACHE_KUBE_APISERVER='$KUBE_DIR/kube-apiserver'"
echo "export RINGCACHE_KUBE_CONTROLLER_MANAGER='$KUBE_DIR/kube-controller-manager'"
echo "export RINGCACHE_KUBE_SCHEDULER='$KUBE_DIR/kube-scheduler'"
echo "export RINGCACHE_KUBECTL='$KUBE_DIR/kubectl'"
echo "export RINGCACHE_KWOK='$KWOK_DIR/kwok'"
echo "export RINGCACHE_KWOKCTL='$KWOK_DIR/kwokctl'"
echo "export RINGCACHE_HELM='$HELM_DIR/helm'"
echo "export RINGCACHE_KUBECONFORM='$KUBECONFORM_DIR/kubeconform'"
# A directory: kubeconform -schema-location "$RINGCACHE_K8S_SCHEMAS"
# -kubernetes-version 1.37.2 [-strict] finds <version>-standalone[-strict]/ in it.
echo "export RINGCACHE_K8S_SCHEMAS='$SCHEMAS_DIR'"
