#!/usr/bin/env bash
# Builds the Kubernetes flavour of app-wasm (Spin SQLite store) and its image.
#
#   k8s/image/build.sh                     stage target/image/ (spin.toml, app_wasm.wasm, Dockerfile)
#   k8s/image/build.sh oci-archive FILE    ... and build it with buildah into an OCI archive
#   k8s/image/build.sh docker REF          ... and `docker build -t REF`
#   k8s/image/build.sh spin-push REF       ... and `spin registry push` it (SpinKube's usual way)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
stage="$repo/target/image"
wasm="$repo/target/spin-sqlite/wasm32-wasip2/release/app_wasm.wasm"

cargo build --manifest-path "$repo/Cargo.toml" --release --target wasm32-wasip2 \
  --features spin-sqlite --target-dir "$repo/target/spin-sqlite" >&2
rm -rf "$stage" && mkdir -p "$stage"
cp "$repo/k8s/image/spin.toml" "$repo/k8s/image/Dockerfile" "$stage/"
cp "$wasm" "$stage/app_wasm.wasm"
echo "staged $stage ($(stat -c %s "$stage/app_wasm.wasm") byte component)" >&2

case "${1:-stage}" in
  stage) ;;
  oci-archive)
    out=$(realpath -m "${2:?usage: build.sh oci-archive FILE}")
    ref="localhost/app-wasm:$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/k8s/image/spin.toml")"
    # vfs: works as root anywhere (no overlay/fuse needed); --platform: the shim's wasi/wasm.
    buildah --storage-driver vfs bud --quiet --platform wasi/wasm -f "$stage/Dockerfile" -t "$ref" "$stage" >&2
    rm -f "$out"
    buildah --storage-driver vfs push --quiet "$ref" "oci-archive:$out:$ref" >&2
    echo "image $ref -> $out ($(stat -c %s "$out") bytes)"
    ;;
  docker)
    ref=${2:?usage: build.sh docker REF}
    docker build --platform wasi/wasm -t "$ref" "$stage"
    echo "image $ref"
    ;;
  spin-push)
    ref=${2:?usage: build.sh spin-push REF}
    spin registry push -f "$stage/spin.toml" "$ref"
    echo "pushed $ref"
    ;;
  *) echo "unknown mode $1 (stage | oci-archive FILE | docker REF | spin-push REF)" >&2; exit 2 ;;
esac
