#!/usr/bin/env bash
# Builds the kube-apiserver, etcd and kube-controller-manager that the tests
# run, once, into a cache
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

log() { printf 'kube-bins: %s\n' "$*" >&2; }

programs="kube-apiserver etcd kube-controller-manager"
complete() {
  local p
  for p in $programs; do [ -x "$1/$p" ] || return 1; done
}

# A build runs in the background so that a signal reaches the trap at once
# (bash defers traps until a foreground child ends) and the trap can stop
# the build instead of leaving it to run on, orphaned, for minutes.
child=
run() {
  "$@" &
  child=$!
  local rc=0
  wait "$child" || rc=$?
  child=
  return "$rc"
}
on_signal() {
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  exit 130
}

# Everything is in main, called on the last line: bash then reads the whole
# script before running any of it, so editing this file during a build (which
# takes minutes) cannot make the running copy execute half-read lines.
main() {
  local here tools go_cmd kube_version root key dir tmp start
  here=$(cd "$(dirname "$0")" && pwd)
  tools="$here/tools"
  go_cmd=${GO:-go}
  # The one place the version is written is tools/go.mod.
  kube_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$tools/go.mod")
  [ -n "$kube_version" ] || { log "no k8s.io/kubernetes requirement in $tools/go.mod"; exit 1; }

  root=${MESHLET_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlet/kube}
  # The key: sha256 over go.mod, go.sum and the `go version` line, each as
  # is, concatenated. Keep in sync with cacheKey in test/kubetest/binaries.go.
  key=$( { cat "$tools/go.mod" "$tools/go.sum"; "$go_cmd" version; } | sha256sum | cut -c1-16)
  dir="$root/$key"
  if [ "${1:-}" = "--key" ]; then # for test/kubetest's check that both agree
    printf '%s\n' "$key"
    return
  fi

  if complete "$dir"; then
    log "using $dir"
    printf '%s\n' "$dir"
    return
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
    return
  fi

  # Build into a temporary folder and rename it into place at the end, so an
  # interrupted build never looks complete.
  tmp=$(mktemp -d "$root/.build-$key.XXXXXX")
  # shellcheck disable=SC2064 # expand $tmp now: it is local to main
  trap "rm -rf '$tmp'" EXIT
  trap on_signal INT TERM HUP
  # Leftovers of builds that were killed (the trap does not run on SIGKILL).
  find "$root" -maxdepth 1 -name '.build-*' ! -path "$tmp" -mmin +120 -exec rm -rf {} + 2>/dev/null || true

  log "building kube-apiserver and kube-controller-manager $kube_version, and etcd, into $dir (cold: ~8 min, ~2.5 GB RAM)"
  start=$(date +%s)
  cd "$tools"
  export GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly" CGO_ENABLED=0
  local pkg=k8s.io/component-base/version minor=${kube_version#v1.}
  minor=${minor%%.*}
  # Without these /version says v0.0.0-master, and clients warn about skew.
  local ldflags="-s -w -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  run "$go_cmd" build -trimpath -o "$tmp/kube-apiserver" -ldflags "$ldflags" k8s.io/kubernetes/cmd/kube-apiserver >&2
  run "$go_cmd" build -trimpath -o "$tmp/kube-controller-manager" -ldflags "$ldflags" k8s.io/kubernetes/cmd/kube-controller-manager >&2
  run "$go_cmd" build -trimpath -o "$tmp/etcd" -ldflags "-s -w" go.etcd.io/etcd/server/v3 >&2
  { "$go_cmd" version; echo "kube-apiserver $kube_version"; "$tmp/etcd" --version; } >"$tmp/VERSIONS" 2>&1 || true
  complete "$tmp"
  chmod 755 "$tmp" # mktemp made it private
  # An incomplete $dir can only be an older script's work: replace it.
  rm -rf "$dir"
  mv -T "$tmp" "$dir"
  trap - EXIT
  log "built in $(( $(date +%s) - start ))s: $dir"
  printf '%s\n' "$dir"
}

main "$@"
