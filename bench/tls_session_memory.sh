#!/usr/bin/env bash
# What OpenSSL itself holds per idle, authenticated server-side TLS
# session: the floor under the edge's (and mosquitto's) memory per
# session. Makes an RSA-2048 CA, server and device certificate with the
# openssl command in a temporary directory, then runs iotca-tls-memory
# (tools/bench) for TLS 1.3 and TLS 1.2.
#
# usage: bench/tls_session_memory.sh [-n CONNECTIONS]   (default 1000)
# Needs a build (scripts/build.sh); IOTCA_BUILD_DIR picks another one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$(realpath -m "${IOTCA_BUILD_DIR:-$root/build}")/tools/iotca-tls-memory"
n=1000
if [[ "${1:-}" == "-n" ]]; then n="$2"; fi
[[ -x "$bin" ]] || { echo "no $bin: run scripts/build.sh first" >&2; exit 2; }

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
cd "$dir"
ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 \
  -subj "/CN=iotca memory bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=keyCertSign"
for who in server device; do
  ossl req -newkey rsa:2048 -nodes -keyout "$who.key" -out "$who.csr" \
    -subj "/CN=$who"
  ossl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -out "$who.pem" -days 2
done
for v in 1.3 1.2; do
  "$bin" --cert server.pem --key server.key --client-cert device.pem \
    --client-key device.key --tls "$v" -n "$n"
  echo
done
