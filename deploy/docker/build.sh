#!/usr/bin/env bash
# Builds (and with --push, pushes) every meshlet image from
# deploy/docker/Dockerfile, tagged the way `meshctl install` expects:
# <registry>/meshlet-<component>:<tag>.
#
# Usage: deploy/docker/build.sh [--push] [REGISTRY] [TAG]
#   REGISTRY  default ghcr.io/meshlet (meshctl install --registry)
#   TAG       default: git describe, as the Makefile versions binaries
#             (meshctl install --tag)
# Needs docker with BuildKit (docker buildx).
set -euo pipefail

push=
if [ "${1:-}" = "--push" ]; then push=1; shift; fi
registry=${1:-ghcr.io/meshlet}
tag=${2:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
root=$(git rev-parse --show-toplevel)

for target in proxy destination identity injector meshctl; do
  name=meshlet-$target
  [ "$target" = meshctl ] && name=meshctl
  image="$registry/$name:$tag"
  echo "building $image" >&2
  DOCKER_BUILDKIT=1 docker build -f "$root/deploy/docker/Dockerfile" --target "$target" \
    --build-arg VERSION="$tag" -t "$image" "$root"
  if [ -n "$push" ]; then docker push "$image"; fi
done
