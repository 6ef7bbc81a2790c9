#!/usr/bin/env bash
# Makes the Secrets an iotca overlay needs and applies them to the cluster.
#
#   deploy/k8s/make-secrets.sh --dev  [--namespace iotca-dev] [options]
#   deploy/k8s/make-secrets.sh --prod [--namespace iotca] [options]
#
# Options:
#   --namespace NS      namespace of the overlay (default iotca-dev / iotca)
#   --dir DIR           where the material is kept (default ./iotca-secrets-NS,
#                       mode 0700); what already exists there is reused
#   --edge-host NAME    a DNS name devices use for the edge, for the
#                       self-signed edge certificate (repeatable)
#   --print             print the manifests instead of applying them
#   -h, --help          this text
# Environment: KUBECTL, the kubectl to run (default: kubectl on PATH).
#
# Files in DIR (a file already there is used as is; delete it to renew):
#   operator-token                  operator token (64 hex digits)
#   internal-token                  --dev: the edge's internal token
#   edge-tls.crt, edge-tls.key      the edge's server certificate, which
#                                   devices verify. Put your own (issued by
#                                   a CA your devices trust) here before the
#                                   first run; otherwise a self-signed
#                                   RSA-2048 one is made for --edge-host.
#   grpc-ca.crt, grpc-ca.key        --prod: the internal CA of the gRPC mTLS
#                                   (the key stays in DIR)
#   registry-grpc.crt/.key          --prod: server certificates for the
#   association-grpc.crt/.key         services' names in NS, and localhost
#                                     for kubectl port-forward
#   edge-grpc.crt/.key              --prod: the edge's client certificate,
#                                   CN=iotca-edge (IOTCA_INTERNAL_CN)
#
# Secrets made (the names deploy/k8s uses):
#   iotca-operator-token (token), iotca-edge-tls (tls.crt, tls.key);
#   --dev:  iotca-internal-token (token);
#   --prod: iotca-registry-grpc-tls, iotca-association-grpc-tls,
#           iotca-edge-grpc-tls (ca.crt, tls.crt, tls.key each).
set -euo pipefail

mode="" ns="" dir="" print=0
edge_hosts=()
KUBECTL="${KUBECTL:-kubectl}"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
die() { echo "make-secrets: error: $*" >&2; exit 1; }

while (($#)); do
  case "$1" in
    --dev | --prod) mode="${1#--}" ;;
    --namespace) ns="${2:?--namespace needs a value}"; shift ;;
    --dir) dir="${2:?--dir needs a value}"; shift ;;
    --edge-host) edge_hosts+=("${2:?--edge-host needs a value}"); shift ;;
    --print) print=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
  shift
done
[[ -n "$mode" ]] || die "say --dev or --prod (try --help)"
[[ -n "$ns" ]] || { [[ "$mode" == dev ]] && ns=iotca-dev || ns=iotca; }
[[ "$ns" =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "'$ns' is not a namespace name"
dir="${dir:-./iotca-secrets-$ns}"
command -v openssl >/dev/null || die "openssl not found"
command -v "$KUBECTL" >/dev/null || die "kubectl not found (set KUBECTL)"
if [[ "$KUBECTL" == */* ]]; then # still found after the cd below
  KUBECTL="$(cd "$(dirname "$KUBECTL")" && pwd -P)/$(basename "$KUBECTL")"
fi

mkdir -p "$dir"
chmod 700 "$dir"
umask 077
cd "$dir"

token() { [[ -s "$1" ]] || openssl rand -hex 32 >"$1"; }

# ec_key FILE: a P-256 key (gRPC's TLS).
ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# leaf NAME SUBJECT EXTENSIONS: NAME.crt/.key signed by grpc-ca, one year.
leaf() {
  [[ -s "$1.crt" && -s "$1.key" ]] && return 0
  ec_key "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA grpc-ca.crt -CAkey grpc-ca.key -CAcreateserial \
    -days 365 -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

# service_sans SERVICE: the names a client may dial the service by.
service_sans() {
  echo "subjectAltName=DNS:$1,DNS:$1.$ns,DNS:$1.$ns.svc,DNS:$1.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
}

token operator-token
if [[ ! -s edge-tls.crt || ! -s edge-tls.key ]]; then
  ((${#edge_hosts[@]})) || edge_hosts=("iotca-edge.$ns.svc" localhost)
  san="subjectAltName=DNS:${edge_hosts[0]}"
  for h in "${edge_hosts[@]:1}"; do san+=",DNS:$h"; done
  openssl req -x509 -newkey rsa:2048 -nodes -keyout edge-tls.key -out edge-tls.crt \
    -days 365 -sha256 -subj "/CN=${edge_hosts[0]}" -addext "$san" \
    -addext extendedKeyUsage=serverAuth 2>/dev/null
  echo "make-secrets: made a self-signed edge certificate for ${edge_hosts[*]} ($dir/edge-tls.crt)" >&2
fi

if [[ "$mode" == dev ]]; then
  token internal-token
else
  if [[ ! -s grpc-ca.crt || ! -s grpc-ca.key ]]; then
    ec_key grpc-ca.key
    openssl req -x509 -new -key grpc-ca.key -subj "/CN=iotca internal CA ($ns)" -days 3650 -sha256 \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      -out grpc-ca.crt 2>/dev/null
  fi
  leaf registry-grpc "/CN=iotca-registry" "$(service_sans iotca-registry)
extendedKeyUsage=serverAuth"
  leaf association-grpc "/CN=iotca-association" "$(service_sans iotca-association)
extendedKeyUsage=serverAuth"
  leaf edge-grpc "/CN=iotca-edge" "extendedKeyUsage=clientAuth"
fi

# The manifests, made by kubectl without touching the cluster.
manifests() {
  local k=("$KUBECTL" --namespace "$ns")
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
  labels:
    pod-security.kubernetes.io/enforce: restricted
EOF
  echo ---
  "${k[@]}" create secret generic iotca-operator-token --from-file=token=operator-token --dry-run=client -o yaml
  echo ---
  "${k[@]}" create secret tls iotca-edge-tls --cert=edge-tls.crt --key=edge-tls.key --dry-run=client -o yaml
  if [[ "$mode" == dev ]]; then
    echo ---
    "${k[@]}" create secret generic iotca-internal-token --from-file=token=internal-token --dry-run=client -o yaml
  else
    for s in registry association edge; do
      echo ---
      "${k[@]}" create secret generic "iotca-$s-grpc-tls" --type=kubernetes.io/tls \
        --from-file=ca.crt=grpc-ca.crt --from-file=tls.crt="$s-grpc.crt" \
        --from-file=tls.key="$s-grpc.key" --dry-run=client -o yaml
    done
  fi
}

if ((print)); then
  manifests
else
  manifests | "$KUBECTL" apply -f -
  echo "make-secrets: Secrets applied in namespace $ns; the material stays in $dir" >&2
fi
