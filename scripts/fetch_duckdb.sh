#!/usr/bin/env bash
# Fetches DuckDB 1.4.4 (the official prebuilt libduckdb.so, its duckdb.h and
# the C++ headers of the same release, for the one file system sluice
# registers through the C++ API) from the npm registry with `npm pack`, checks both tarballs against the
# pinned integrity hashes, and unpacks them into third_party/duckdb
# (kept out of git). Idempotent: does nothing when already present.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/third_party/duckdb}"

LIB_PKG="@duckdb/node-bindings-linux-x64@1.4.4-r.4"
LIB_SHA512="jBTL/WvfwxLToFa/pVHfT6elMtltJGnc3wSuxZD9OfMltit9YUdVFS37vBFQzXMT1Z8OWjtSjMh+zPKxOwHLHA=="
HDR_PKG="duckdb@1.4.4"
HDR_SHA512="hEJJ5hyVF0VLj3dmOLpsWrQR0b3d4Ykqtygm6iUXjHJDDnSqg/USKxcb5qvNrOhFYPgktayU6dXCtgPqcmmpog=="
STAMP="1.4.4-r.4+cpp-headers"

if [[ -f "$dest/lib/libduckdb.so" && -f "$dest/include/duckdb.h" && -f "$dest/include/duckdb.hpp" && "$(cat "$dest/VERSION" 2>/dev/null)" == "$STAMP" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_duckdb: npm is needed (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

fetch() {  # fetch PACKAGE EXPECTED_SHA512 -> prints the tarball name
  local pkg="$1" want="$2" tgz got
  tgz="$(npm pack --silent "$pkg" 2>/dev/null | tail -n 1)"
  [[ -f "$tgz" ]] || { echo "fetch_duckdb: npm pack $pkg failed" >&2; exit 1; }
  got="$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [[ "$got" != "$want" ]]; then
    echo "fetch_duckdb: integrity mismatch for $pkg: got sha512-$got, pinned sha512-$want" >&2
    exit 1
  fi
  echo "$tgz"
}

lib_tgz="$(fetch "$LIB_PKG" "$LIB_SHA512")"
hdr_tgz="$(fetch "$HDR_PKG" "$HDR_SHA512")"

mkdir -p "$dest/lib" "$dest/include"
tar xzf "$lib_tgz" package/libduckdb.so package/LICENSE
tar xzf "$hdr_tgz" package/src/duckdb/src/include
install -m 0644 package/libduckdb.so "$dest/lib/libduckdb.so"
rm -rf "$dest/include"
mkdir -p "$dest/include"
cp -R package/src/duckdb/src/include/. "$dest/include/"
install -m 0644 package/LICENSE "$dest/LICENSE"
echo "$STAMP" > "$dest/VERSION"
echo "fetch_duckdb: DuckDB $STAMP installed in $dest"
