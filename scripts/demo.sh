#!/usr/bin/env bash
# The guided demo: walks the documented flow of managing CA certificates
# end to end against a running suite (scripts/run.sh in another shell),
# narrating each step and the command it runs:
#
#   account and API key -> registration code -> a CA and its validation
#   certificate made with openssl -> register the CA -> an X.509/private-CA
#   product -> the CSV template, filled for three device certificates named
#   [ProductKey]_[DeviceName]_[SN].cer/.key -> a bad file's row errors ->
#   the upload -> a device connects with mosquitto_sub and receives its
#   identity -> it publishes, and the message arrives upstream (iotca-tap)
#   -> a downstream message reaches it.
#
# It removes what it made (associations, the CA, its files) and exits
# non-zero at the first step that fails. The account and the product stay:
# the API has no way to delete them.
#
#   scripts/demo.sh              against scripts/run.sh's defaults
#   scripts/demo.sh --keep       keep the working directory (certificates)
#
# Environment (defaults are scripts/run.sh's):
#   IOTCA_REGISTRY, IOTCA_ASSOCIATION   service addresses
#   IOTCA_OPERATOR_TOKEN                operator token (default: .run/secrets/operator-token)
#   IOTCA_DEMO_EDGE                     edge host:port (127.0.0.1:8883)
#   IOTCA_DEMO_EDGE_CA                  the edge's server certificate (.run/edge/server.pem)
#   IOTCA_EDGE_UPSTREAM, IOTCA_EDGE_DOWNSTREAM   the NNG addresses the edge dials
#   IOTCA_BUILD_DIR                     where the iotca binaries are (build/)
set -euo pipefail

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) iotca_die "unknown argument '$arg' (try --help)" ;;
  esac
done

BUILD_DIR="$(iotca_build_dir)"
CLI="$BUILD_DIR/tools/iotca"
TAP="$BUILD_DIR/tools/iotca-tap"
PY=/usr/bin/python3
export IOTCA_REGISTRY="${IOTCA_REGISTRY:-127.0.0.1:50051}"
export IOTCA_ASSOCIATION="${IOTCA_ASSOCIATION:-127.0.0.1:50052}"
EDGE="${IOTCA_DEMO_EDGE:-127.0.0.1:8883}"
EDGE_HOST="${EDGE%:*}"
EDGE_PORT="${EDGE##*:}"
EDGE_CA="${IOTCA_DEMO_EDGE_CA:-$IOTCA_ROOT/.run/edge/server.pem}"
UPSTREAM="${IOTCA_EDGE_UPSTREAM:-tcp://127.0.0.1:5555}"
DOWNSTREAM="${IOTCA_EDGE_DOWNSTREAM:-tcp://127.0.0.1:5556}"
OPERATOR_TOKEN="${IOTCA_OPERATOR_TOKEN:-}"
if [[ -z "$OPERATOR_TOKEN" && -r "$IOTCA_ROOT/.run/secrets/operator-token" ]]; then
  OPERATOR_TOKEN="$(<"$IOTCA_ROOT/.run/secrets/operator-token")"
fi

for tool in "$CLI" "$TAP"; do
  [[ -x "$tool" ]] || iotca_die "$tool is not built: run scripts/run.sh (it builds everything) first"
done
for tool in openssl mosquitto_sub mosquitto_pub "$PY"; do
  command -v "$tool" >/dev/null || iotca_die "$tool is missing: scripts/install-deps.sh installs it"
done
[[ -n "$OPERATOR_TOKEN" ]] ||
  iotca_die "no operator token: start scripts/run.sh first, or set IOTCA_OPERATOR_TOKEN"
[[ -r "$EDGE_CA" ]] ||
  iotca_die "the edge's server certificate $EDGE_CA is not readable: start scripts/run.sh, or set IOTCA_DEMO_EDGE_CA"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/iotca-demo.XXXXXX")"
PIDS=()
CA_ID=""
API_KEY=""
SNS=()

step=0
say() {
  step=$((step + 1))
  printf '\n\033[1m==> %d. %s\033[0m\n' "$step" "$*"
}
note() { printf '    %s\n' "$*"; }
# run CMD...: shows the command, runs it in the work directory.
run() {
  printf '    $ %s\n' "$*"
  (cd "$WORK" && "$@")
}
fail() {
  echo "demo: FAILED at step $step: $*" >&2
  exit 1
}
json() { # json FIELD < JSON: one top-level string field
  "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
cli() { IOTCA_TOKEN="$API_KEY" "$CLI" "$@"; }

cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  if [[ -n "$CA_ID" ]]; then
    echo
    echo "==> cleaning up: the associations and the CA certificate"
    for sn in "${SNS[@]}"; do cli assoc delete --ca "$CA_ID" "$sn" >/dev/null 2>&1; done
    cli ca disable "$CA_ID" >/dev/null 2>&1
    cli ca delete "$CA_ID" >/dev/null 2>&1 || echo "demo: could not delete CA $CA_ID" >&2
  fi
  if ((keep)); then
    echo "demo: kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "iotca demo: registry $IOTCA_REGISTRY, association $IOTCA_ASSOCIATION, edge $EDGE"
echo "working directory: $WORK"

# ---------------------------------------------------------------- tenant
say "The operator creates a tenant account and its API key"
acct="demo-$(date +%s)-$$"
ACCOUNT_ID="$(IOTCA_TOKEN="$OPERATOR_TOKEN" "$CLI" --json account create "$acct" | json id)" ||
  fail "account create"
note "\$ iotca account create $acct            -> $ACCOUNT_ID"
API_KEY="$(IOTCA_TOKEN="$OPERATOR_TOKEN" "$CLI" --json key create --account "$ACCOUNT_ID" 2>/dev/null | json api_key)" ||
  fail "key create"
note "\$ iotca key create --account $ACCOUNT_ID -> iok_… (shown once; the tenant keeps it)"

say "The tenant reads its registration code (the validation certificate's CN)"
REGCODE="$(cli --json regcode | json registration_code)" || fail "regcode"
note "\$ iotca regcode -> $REGCODE"

# ---------------------------------------------------------------- the CA
say "Make a CA certificate and its private key"
run openssl genrsa -out yourPrivateKey.key 2048 2>/dev/null || fail "openssl genrsa"
run openssl req -x509 -new -key yourPrivateKey.key -sha256 -days 365 \
  -subj "/C=DE/O=Demo Devices $$/CN=Demo Device CA $(date +%s)" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out yourCA.cer || fail "openssl req -x509"

say "Make the validation certificate with the product page's three commands"
run openssl genrsa -out verificationCert.key 2048 2>/dev/null || fail "openssl genrsa"
run openssl req -new -key verificationCert.key -subj "/CN=$REGCODE" -out verificationCert.csr ||
  fail "openssl req"
run openssl x509 -req -in verificationCert.csr -CA yourCA.cer -CAkey yourPrivateKey.key \
  -CAcreateserial -out verificationCert.crt -days 300 -sha512 2>/dev/null || fail "openssl x509 -req"

say "Register the CA certificate (proof of possession: the validation certificate)"
printf '    $ iotca ca register --name demo_ca --cert yourCA.cer --verification verificationCert.crt\n'
CA_ID="$(cd "$WORK" && cli --json ca register --name demo_ca --cert yourCA.cer \
  --verification verificationCert.crt | json id)" || fail "ca register"
note "registered: CA id $CA_ID (ACTIVE)"

# ---------------------------------------------------------------- product
say "Create a product whose devices use X.509 certificates of the private CA"
PK="$(cli --json product create --name "demo_$$" | json product_key)" || fail "product create"
note "\$ iotca product create --name demo_$$ -> ProductKey $PK"

# ---------------------------------------------------------------- devices
say "Issue three device certificates, named [ProductKey]_[DeviceName]_[SN]"
DEVICES=(thermostat-1 thermostat-2 thermostat-3)
declare -A CERT_OF
for dn in "${DEVICES[@]}"; do
  sn="$(openssl rand -hex 8 | tr a-f A-F | sed 's/^0*//')"
  stem="${PK}_${dn}_${sn}"
  (cd "$WORK" && openssl genrsa -traditional -out "$stem.key" 2048 2>/dev/null &&
    openssl req -new -key "$stem.key" -subj "/CN=$dn" -out "$stem.csr" &&
    openssl x509 -req -in "$stem.csr" -CA yourCA.cer -CAkey yourPrivateKey.key \
      -set_serial "0x$sn" -days 30 -sha256 -out "$stem.cer" 2>/dev/null) ||
    fail "making the certificate of $dn"
  SNS+=("$sn")
  CERT_OF[$dn]="$stem"
  note "$stem.cer  (SN $sn)"
done

say "Download the CSV template and fill it"
printf '    $ iotca assoc template -o devices.csv\n'
(cd "$WORK" && cli assoc template -o devices.csv) >/dev/null || fail "assoc template"
for i in "${!DEVICES[@]}"; do
  printf '%s,%s,%s\n' "$PK" "${DEVICES[i]}" "${SNS[i]}" >>"$WORK/devices.csv"
done
sed 's/^/    | /' "$WORK/devices.csv"

say "A file with mistakes is refused as a whole, row by row"
{
  head -n 2 "$WORK/devices.csv"
  printf '%s,no,%s\n' "$PK" "12:34"
  printf '%s,thermostat-9,not-hex\n' "$PK"
} >"$WORK/bad.csv"
sed 's/^/    | /' "$WORK/bad.csv"
printf '    $ iotca assoc upload --ca %s bad.csv\n' "$CA_ID"
if (cd "$WORK" && cli assoc upload --ca "$CA_ID" bad.csv) >"$WORK/bad.out" 2>&1; then
  fail "a file with bad rows was accepted"
fi
sed 's/^/    /' "$WORK/bad.out"
note "(nothing of that file was committed)"

say "Upload the good file: every row is committed, or none"
printf '    $ iotca assoc upload --ca %s devices.csv\n' "$CA_ID"
(cd "$WORK" && cli assoc upload --ca "$CA_ID" devices.csv) | sed 's/^/    /' ||
  fail "assoc upload"

# ---------------------------------------------------------------- connect
say "Watch what the edge hands upstream (iotca-tap listens where the edge dials)"
"$TAP" listen "$UPSTREAM" >"$WORK/upstream.jsonl" 2>"$WORK/tap.err" &
PIDS+=("$!")
note "\$ iotca-tap listen $UPSTREAM &"
sleep 1

dn="${DEVICES[0]}"
stem="${CERT_OF[$dn]}"
say "Connect $dn with mosquitto_sub: it learns its ProductKey and DeviceName"
note "(the device knows neither: only its certificate, signed by the registered CA)"
printf '    $ mosquitto_sub -h %s -p %s --cafile server.pem --cert %s.cer --key %s.key \\\n' \
  "$EDGE_HOST" "$EDGE_PORT" "$stem" "$stem"
printf "        -i 'demo|securemode=2|' -t '/%s/%s/user/get' -v\n" "$PK" "$dn"
identity=""
for _ in 1 2 3 4 5; do
  identity="$(cd "$WORK" && mosquitto_sub -h "$EDGE_HOST" -p "$EDGE_PORT" --cafile "$EDGE_CA" \
    --insecure --cert "$stem.cer" --key "$stem.key" -i "demo|securemode=2|" \
    -t "/$PK/$dn/user/get" -v -C 1 -W 5 2>&1)" && break
  sleep 1 # the edge may still be learning about the new association
done
note "received: $identity"
want="/ext/auth/identity/response {\"productKey\":\"$PK\",\"deviceName\":\"$dn\"}"
[[ "$identity" == "$want" ]] || fail "expected '$want'"

say "$dn publishes telemetry on its own topic; the message arrives upstream"
printf "    \$ mosquitto_pub … -q 1 -t '/%s/%s/user/update' -m '{\"temperature\":21.5}'\n" "$PK" "$dn"
(cd "$WORK" && mosquitto_pub -h "$EDGE_HOST" -p "$EDGE_PORT" --cafile "$EDGE_CA" --insecure \
  --cert "$stem.cer" --key "$stem.key" -i "demo|securemode=2|" -q 1 \
  -t "/$PK/$dn/user/update" -m '{"temperature":21.5}') || fail "mosquitto_pub"
got=""
for _ in $(seq 1 50); do
  got="$(grep '"kind":"PUBLISH"' "$WORK/upstream.jsonl" | grep -F "/$PK/$dn/user/update" | head -n 1 || true)"
  [[ -n "$got" ]] && break
  sleep 0.1
done
[[ -n "$got" ]] || fail "the message did not arrive upstream (is the edge's IOTCA_EDGE_UPSTREAM $UPSTREAM?)"
note "upstream: $got"

say "The platform sends $dn a message; the edge delivers it to its subscription"
(cd "$WORK" && mosquitto_sub -h "$EDGE_HOST" -p "$EDGE_PORT" --cafile "$EDGE_CA" --insecure \
  --cert "$stem.cer" --key "$stem.key" -i "demo|securemode=2|" \
  -t "/$PK/$dn/user/get" -v -C 2 -W 10 >"$WORK/down.out" 2>&1) &
sub=$!
sleep 1
run "$TAP" send "$DOWNSTREAM" --pk "$PK" --dn "$dn" --topic "/$PK/$dn/user/get" \
  --payload '{"setpoint":20}' --wait-ms 5000 >/dev/null || fail "iotca-tap send"
wait "$sub" || fail "the device did not receive the downstream message: $(cat "$WORK/down.out")"
note "the device received: $(tail -n 1 "$WORK/down.out")"
grep -qF "/$PK/$dn/user/get {\"setpoint\":20}" "$WORK/down.out" ||
  fail "unexpected downstream delivery: $(cat "$WORK/down.out")"

say "Done"
note "Account $ACCOUNT_ID, product $PK, CA $CA_ID with ${#DEVICES[@]} associated devices."
note "The associations and the CA are removed now; the account and product stay."
