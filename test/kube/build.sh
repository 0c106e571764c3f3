#!/usr/bin/env bash
# Builds the kube-apiserver and etcd that the tests run, once, into a cache
# outside the repository, and prints the folder holding them (only that, on
# stdout; progress goes to stderr).
#
# The cache folder is keyed by the wrapper module (tools/go.mod, tools/go.sum)
# and `go version`: an unchanged key is never rebuilt. test/kubetest computes
# the same key to find the binaries when MESHLET_KUBE_BIN_DIR is not set.
#
# Usage: build.sh          build if needed, print the bin folder
#        build.sh --key    print the cache key only
#
# Environment:
#   MESHLET_KUBE_CACHE  cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/meshlet/kube)
#   GO                  the go command (default go)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tools="$here/tools"
go_cmd=${GO:-go}
kube_version=v1.37.2 # must match k8s.io/kubernetes in tools/go.mod

log() { printf 'kube-bins: %s\n' "$*" >&2; }

root=${MESHLET_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlet/kube}
# The key: sha256 over go.mod, go.sum and the `go version` line, each as is,
# concatenated. Keep in sync with cacheKey in test/kubetest/binaries.go.
key=$( { cat "$tools/go.mod" "$tools/go.sum"; "$go_cmd" version; } | sha256sum | cut -c1-16)
dir="$root/$key"
if [ "${1:-}" = "--key" ]; then # for test/kubetest's check that both agree
  printf '%s\n' "$key"
  exit 0
fi

complete() { [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]; }

if complete "$dir"; then
  log "using $dir"
  printf '%s\n' "$dir"
  exit 0
fi

mkdir -p "$root"
# One build at a time per cache: a second caller waits, then finds the result.
exec 9>"$root/.lock"
if ! flock -n 9; then
  log "another build holds $root/.lock; waiting"
  flock 9
fi
if complete "$dir"; then
  log "using $dir (built meanwhile)"
  printf '%s\n' "$dir"
  exit 0
fi

# Build into a temporary folder and rename it into place at the end, so an
# interrupted build never looks complete.
tmp=$(mktemp -d "$root/.build-$key.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Leftovers of builds that were killed (the trap does not run on SIGKILL).
find "$root" -maxdepth 1 -name '.build-*' ! -path "$tmp" -mmin +120 -exec rm -rf {} + 2>/dev/null || true

log "building kube-apiserver $kube_version and etcd into $dir (cold: ~5 min, ~2.5 GB RAM)"
start=$(date +%s)
cd "$tools"
export GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly" CGO_ENABLED=0
pkg=k8s.io/component-base/version
minor=${kube_version#v1.}
minor=${minor%%.*}
"$go_cmd" build -trimpath -o "$tmp/kube-apiserver" \
  -ldflags "-s -w -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
  k8s.io/kubernetes/cmd/kube-apiserver >&2
"$go_cmd" build -trimpath -o "$tmp/etcd" -ldflags "-s -w" go.etcd.io/etcd/server/v3 >&2
{ "$go_cmd" version; echo "kube-apiserver $kube_version"; "$tmp/etcd" --version; } >"$tmp/VERSIONS" 2>&1 || true
complete "$tmp"
chmod 755 "$tmp" # mktemp made it private
mv -T "$tmp" "$dir"
trap - EXIT
log "built in $(( $(date +%s) - start ))s: $dir"
printf '%s\n' "$dir"
