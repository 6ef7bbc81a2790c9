#!/usr/bin/env bash
# Installs the Debian 12 packages iotca needs to build, test and run, and only
# those that are missing; then the npm packages of tools/k8s-validate (the
# offline Kubernetes schema validator of tests/deploy) and examples/node
# with `npm ci`, when they are missing or a package-lock.json changed. Safe to run any number
# of times: when everything is present it changes nothing, needs no root and
# no network.
#
#   scripts/install-deps.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

# ---------------------------------------------------------------------------
# The package list: the one place to add a dependency (Debian 12 names).
# kubectl comes from kubernetes-client, bookworm's only kubectl (1.20, with
# an old kustomize built in): tests/deploy renders deploy/k8s with it, so the
# manifests use only what that kustomize understands. Operators may use any
# newer kubectl against their clusters.
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
  # the C device example (examples/c-device)
  libmosquitto-dev
  # scripts
  curl
  # deploy/k8s: rendering (kubectl kustomize), parsing the rendered YAML, and
  # Node.js for the schema validator in tools/k8s-validate (npm packages)
  kubernetes-client python3-yaml nodejs npm
)

# NPM_PROJECTS: the project-local npm packages, each installed with
# `npm ci` exactly as its package-lock.json says: the Kubernetes schema
# validator of tests/deploy, and the Node.js client example.
NPM_PROJECTS=(tools/k8s-validate examples/node)

# npm_ci DIR: installs DIR/node_modules, unless the lock file is the one
# last installed there.
npm_ci() {
  local rel="$1" dir="$ROOT/$1" stamp want
  [[ -f "$dir/package-lock.json" ]] || return 0
  stamp="$dir/node_modules/.iotca-lock.sha256"
  want="$(sha256sum <"$dir/package-lock.json")"
  if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; then
    echo "install-deps: $rel npm packages already installed"
    return 0
  fi
  command -v npm >/dev/null 2>&1 ||
    { echo "install-deps: error: npm not found (it is in the package list)" >&2; exit 1; }
  # Project-local, never global; no audit or funding requests.
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "install-deps: error: 'npm ci' failed in $dir (it needs the npm registry once)" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
  echo "install-deps: installed the npm packages of $rel"
}

npm_ci_all() {
  local p
  for p in "${NPM_PROJECTS[@]}"; do
    npm_ci "$p"
  done
}

# Packages that installed packages provide (e.g. NodeSource's nodejs provides
# npm): asking apt for them would replace the provider.
declare -A provided=()
while read -r status provides; do
  [[ "$status" == ii ]] || continue
  IFS=, read -ra names <<<"$provides"
  for name in "${names[@]}"; do
    name="${name%%(*}"
    name="${name// /}"
    [[ -n "$name" ]] && provided[$name]=1
  done
done < <(dpkg-query -W -f='${db:Status-Abbrev} ${Provides}\n' 2>/dev/null || true)

# kubernetes_client_local: when another package (a kubectl from Google's or
# Kubernetes' apt repository) owns /usr/bin/kubectl, kubernetes-client cannot
# be installed beside it. Its kubectl is then unpacked, without root, into
# tools/k8s-validate/kubernetes-client/ (git-ignored), where tests/deploy
# looks for it; the kubectl on PATH is left alone.
kubernetes_client_local() {
  local dest="$ROOT/tools/k8s-validate/kubernetes-client" tmp deb
  if [[ -x "$dest/usr/bin/kubectl" ]]; then
    return 0
  fi
  tmp="$(mktemp -d -t iotca-kubernetes-client.XXXXXX)"
  if ! (cd "$tmp" && apt-get download -q kubernetes-client >/dev/null 2>&1); then
    rm -rf "$tmp"
    echo "install-deps: error: 'apt-get download kubernetes-client' failed (run 'apt-get update' as root?)" >&2
    exit 1
  fi
  deb="$(echo "$tmp"/kubernetes-client_*.deb)"
  rm -rf "$dest.tmp"
  dpkg-deb -x "$deb" "$dest.tmp" && mv "$dest.tmp" "$dest"
  rm -rf "$tmp"
  echo "install-deps: /usr/bin/kubectl belongs to package '$1', so kubernetes-client's kubectl" \
    "was unpacked into tools/k8s-validate/kubernetes-client/ for the tests"
}

missing=()
local_kubectl=""
for pkg in "${PACKAGES[@]}"; do
  # "install ok installed" only when the package is fully installed.
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  if [[ "$status" != "install ok installed" && -z "${provided[$pkg]:-}" ]]; then
    if [[ "$pkg" == kubernetes-client ]]; then
      owner="$(dpkg-query -S /usr/bin/kubectl 2>/dev/null | cut -d: -f1 || true)"
      if [[ -n "$owner" && "$owner" != kubernetes-client ]]; then
        local_kubectl="$owner"
        continue
      fi
    fi
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  [[ -z "$local_kubectl" ]] || kubernetes_client_local "$local_kubectl"
  npm_ci_all
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
[[ -z "$local_kubectl" ]] || kubernetes_client_local "$local_kubectl"
npm_ci_all
