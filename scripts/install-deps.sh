#!/usr/bin/env bash
# Installs the Debian 12 packages iotca needs to build, test and run, and only
# those that are missing. Safe to run any number of times: when everything is
# present it changes nothing and needs no root.
#
#   scripts/install-deps.sh
set -euo pipefail

# ---------------------------------------------------------------------------
# The package list: the one place to add a dependency (Debian 12 names).
# kubectl is not here: bookworm has no kubectl package (only the old
# kubernetes-client 1.20), so cluster tooling is the operator's to install.
# ---------------------------------------------------------------------------
PACKAGES=(
  # toolchain
  build-essential cmake pkg-config clang clang-format git
  libclang-rt-14-dev # clang's libFuzzer and LeakSanitizer runtimes
  # gRPC C core and protobuf-c
  libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
  protobuf-compiler protobuf-compiler-grpc
  # Python gRPC clients for end-to-end tests (run them with /usr/bin/python3)
  python3-grpcio python3-grpc-tools python3-protobuf
  # TLS, HTTP (etcd's JSON gateway), JSON
  libssl-dev openssl libcurl4-openssl-dev libjansson-dev
  # state store
  etcd-server etcd-client
  # device message transport
  libnng-dev
  # MQTT peers for the edge's tests
  mosquitto mosquitto-clients python3-paho-mqtt
  # scripts
  curl
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  # "install ok installed" only when the package is fully installed.
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

command -v apt-get >/dev/null 2>&1 ||
  { echo "install-deps: error: apt-get not found; iotca's scripts target Debian 12" >&2; exit 1; }

as_root=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "install-deps: error: missing packages (${missing[*]}) and not root, and sudo is not installed;" \
      "run this script as root" >&2
    exit 1
  fi
fi

log="$(mktemp -t iotca-install-deps.XXXXXX)"
trap 'rm -f "$log"' EXIT

run_apt() {
  # Wait for another apt/dpkg run to release its lock instead of failing at once.
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -q -y -o DPkg::Lock::Timeout=600 "$@" >>"$log" 2>&1 </dev/null
}

if ! run_apt update || ! run_apt install "${missing[@]}"; then
  echo "install-deps: error: apt-get failed installing: ${missing[*]}" >&2
  echo "---- last lines of apt-get output ----" >&2
  tail -n 40 "$log" >&2
  exit 1
fi

echo "install-deps: installed ${#missing[@]} missing package(s): ${missing[*]}"
