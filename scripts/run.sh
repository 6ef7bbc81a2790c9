#!/usr/bin/env bash
# THE run command: installs missing packages, builds, starts a throwaway
# single-node etcd on loopback and every iotca service that has been built,
# prints how to use them, and stops them all on Ctrl-C.
#
#   scripts/run.sh            start (etcd data and tokens are kept in .run/)
#   scripts/run.sh --reset    start with an empty etcd
#
# Environment (all optional):
#   IOTCA_DEV_ETCD_PORT          etcd client port          (default 2379)
#   IOTCA_DEV_ETCD_PEER_PORT     etcd peer port            (default 2380)
#   IOTCA_DEV_REGISTRY_ADDR      registry listen address   (default 127.0.0.1:50051)
#   IOTCA_DEV_ASSOCIATION_ADDR   association listen addr.  (default 127.0.0.1:50052)
#   IOTCA_DEV_EDGE_ADDR          edge MQTT/TLS listen addr (default 127.0.0.1:8883)
#   IOTCA_DEV_EDGE_PROBE_ADDR    edge /healthz /readyz /metrics (default 127.0.0.1:9883)
#   IOTCA_EDGE_UPSTREAM, IOTCA_EDGE_DOWNSTREAM  NNG URLs the edge dials
#                                (default tcp://127.0.0.1:5555 and :5556)
#   IOTCA_EDGE_TLS_CERT, IOTCA_EDGE_TLS_KEY   edge server certificate and key
#                                (default: a self-signed one for localhost and
#                                127.0.0.1, made once in .run/edge/)
#   IOTCA_LOG_LEVEL              passed to the services    (default info)
#   IOTCA_SANITIZE, IOTCA_WERROR, IOTCA_BUILD_DIR   as for scripts/build.sh
#
# Everything it writes is under .run/ (git-ignored): etcd/ (data),
# secrets/ (tokens), logs/ (one log per process).
set -euo pipefail

# Started in the background by a non-interactive shell (`scripts/run.sh &`),
# bash inherits SIGINT as ignored and then cannot trap it. Re-exec once with
# default signal dispositions so that SIGINT always stops the suite.
sig_ignored="$(awk '/^SigIgn:/ {print $2}' /proc/$$/status 2>/dev/null || true)"
if [[ -n "$sig_ignored" ]] && (((16#$sig_ignored & 16#4003) != 0)) && [[ -z "${IOTCA_RUN_REEXEC:-}" ]]; then
  IOTCA_RUN_REEXEC=1 exec env --default-signal=HUP,INT,TERM "$BASH" "${BASH_SOURCE[0]}" "$@"
fi
unset IOTCA_RUN_REEXEC sig_ignored

# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
  iotca_die "scripts/run.sh needs bash 5.1 or newer (Debian 12 has 5.2)"
fi

reset=0
for arg in "$@"; do
  case "$arg" in
    --reset) reset=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) iotca_die "unknown argument '$arg' (try --help)" ;;
  esac
done

RUN_DIR="$IOTCA_ROOT/.run"
ETCD_DATA="$RUN_DIR/etcd"
SECRETS_DIR="$RUN_DIR/secrets"
LOG_DIR="$RUN_DIR/logs"

ETCD_PORT="${IOTCA_DEV_ETCD_PORT:-2379}"
ETCD_PEER_PORT="${IOTCA_DEV_ETCD_PEER_PORT:-2380}"
ETCD_ENDPOINT="http://127.0.0.1:$ETCD_PORT"

# ---------------------------------------------------------------------------
# The services, in start order. To add one, add one line:
#   service NAME BINARY LISTEN_VAR DEFAULT_ADDR [FILE_VAR...]
# BINARY is relative to the build dir; it is skipped (with a note) until it
# has been built. It gets LISTEN_VAR=<address>, where the address is
# $IOTCA_DEV_<NAME>_ADDR or DEFAULT_ADDR. Each FILE_VAR is an environment
# variable that must name an existing file, else the service is skipped.
# All services also get IOTCA_ETCD_ENDPOINTS, IOTCA_REGISTRY,
# IOTCA_ASSOCIATION, IOTCA_OPERATOR_TOKEN, IOTCA_INTERNAL_TOKEN, IOTCA_LOG_LEVEL.
# ---------------------------------------------------------------------------
define_services() {
  service registry    services/registry/iotca-registry       IOTCA_LISTEN      127.0.0.1:50051
  service association services/association/iotca-association IOTCA_LISTEN      127.0.0.1:50052
  service edge        services/mqtt-edge/iotca-edge          IOTCA_EDGE_LISTEN 127.0.0.1:8883 \
    IOTCA_EDGE_TLS_CERT IOTCA_EDGE_TLS_KEY
}

SVC_NAMES=()
declare -A SVC_BIN SVC_LISTEN_VAR SVC_ADDR SVC_FILE_VARS
service() {
  local name="$1" bin="$2" listen_var="$3" default_addr="$4"
  shift 4
  local override="IOTCA_DEV_${name^^}_ADDR"
  override="${override//-/_}"
  SVC_NAMES+=("$name")
  SVC_BIN[$name]="$bin"
  SVC_LISTEN_VAR[$name]="$listen_var"
  SVC_ADDR[$name]="${!override:-$default_addr}"
  SVC_FILE_VARS[$name]="$*"
}

addr_host() { local h="${1%:*}"; h="${h#[}"; h="${h%]}"; [[ "$h" == 0.0.0.0 || -z "$h" ]] && h=127.0.0.1; [[ "$h" == :: ]] && h=::1; echo "$h"; }
addr_port() { echo "${1##*:}"; }

# port_in_use HOST PORT: something accepts connections there.
port_in_use() {
  # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# require_free_port WHAT HOST PORT HOW_TO_CHANGE [HINT]
require_free_port() {
  if port_in_use "$2" "$3"; then
    iotca_die "port $3 ($1) on $2 is already in use. Is another scripts/run.sh running${5:-}?" \
      "(ss -ltnp 'sport = :$3' shows which process.) Stop it, or choose another port:" \
      "$4 scripts/run.sh"
  fi
}

# secret NAME: a 256-bit hex token generated once and kept in .run/secrets/NAME.
secret() {
  local f="$SECRETS_DIR/$1"
  if [[ ! -s "$f" ]]; then
    (umask 077 && openssl rand -hex 32 >"$f.tmp" && mv "$f.tmp" "$f")
  fi
  local value
  value="$(<"$f")"
  [[ "$value" =~ ^[0-9a-f]{64}$ ]] || iotca_die "$f is not a 64-hex-digit token; delete it to get a new one"
  echo "$value"
}

# ---------------------------------------------------------------------------
# Install, build, and decide what to start.
# ---------------------------------------------------------------------------
"$IOTCA_ROOT/scripts/install-deps.sh"
"$IOTCA_ROOT/scripts/build.sh"
BUILD_DIR="$(iotca_build_dir)"
if [[ "$(iotca_bool "${IOTCA_SANITIZE:-OFF}")" == ON ]]; then
  iotca_sanitizer_env
fi

# The edge's server certificate: devices check it with --cafile. For a
# local run a self-signed one (RSA-2048, CN=localhost, SAN localhost and
# 127.0.0.1) is made once and kept, unless the caller brings their own.
if [[ -z "${IOTCA_EDGE_TLS_CERT:-}${IOTCA_EDGE_TLS_KEY:-}" ]]; then
  EDGE_DIR="$RUN_DIR/edge"
  if [[ ! -s "$EDGE_DIR/server.pem" || ! -s "$EDGE_DIR/server.key" ]]; then
    mkdir -p "$EDGE_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 825 -sha256 \
      -keyout "$EDGE_DIR/server.key" -out "$EDGE_DIR/server.pem" \
      -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1 ||
      iotca_die "openssl could not make the edge's server certificate in $EDGE_DIR"
    chmod 600 "$EDGE_DIR/server.key"
  fi
  export IOTCA_EDGE_TLS_CERT="$EDGE_DIR/server.pem" IOTCA_EDGE_TLS_KEY="$EDGE_DIR/server.key"
fi
export IOTCA_EDGE_PROBE_LISTEN="${IOTCA_DEV_EDGE_PROBE_ADDR:-127.0.0.1:9883}"
# The message plane: the edge dials these; `iotca-tap listen` / `send`
# listens there (QoS 1/2 from devices is acknowledged once a consumer took it).
export IOTCA_EDGE_UPSTREAM="${IOTCA_EDGE_UPSTREAM:-tcp://127.0.0.1:5555}"
export IOTCA_EDGE_DOWNSTREAM="${IOTCA_EDGE_DOWNSTREAM:-tcp://127.0.0.1:5556}"

define_services
TO_START=()
declare -A SVC_NOTE
for name in "${SVC_NAMES[@]}"; do
  bin="$BUILD_DIR/${SVC_BIN[$name]}"
  if [[ ! -x "$bin" ]]; then
    SVC_NOTE[$name]="not started: $bin is not built yet"
    continue
  fi
  missing=""
  for var in ${SVC_FILE_VARS[$name]}; do
    if [[ -z "${!var:-}" ]]; then
      missing+=" $var (not set)"
    elif [[ ! -r "${!var}" ]]; then
      missing+=" $var (${!var}: no such readable file)"
    fi
  done
  if [[ -n "$missing" ]]; then
    SVC_NOTE[$name]="not started: needs${missing}"
    continue
  fi
  TO_START+=("$name")
done

# Check every port before starting anything.
etcd_hint=", or the packaged etcd service ('service etcd stop')"
require_free_port "etcd client" 127.0.0.1 "$ETCD_PORT" "IOTCA_DEV_ETCD_PORT=<port>" "$etcd_hint"
require_free_port "etcd peer" 127.0.0.1 "$ETCD_PEER_PORT" "IOTCA_DEV_ETCD_PEER_PORT=<port>" "$etcd_hint"
for name in "${TO_START[@]}"; do
  addr="${SVC_ADDR[$name]}"
  override="IOTCA_DEV_${name^^}_ADDR"
  require_free_port "$name" "$(addr_host "$addr")" "$(addr_port "$addr")" "${override//-/_}=127.0.0.1:<port>"
done

mkdir -p "$LOG_DIR" "$SECRETS_DIR"
chmod 700 "$SECRETS_DIR"
if ((reset)); then
  rm -rf "$ETCD_DATA"
fi

IOTCA_OPERATOR_TOKEN="$(secret operator-token)"
IOTCA_INTERNAL_TOKEN="$(secret internal-token)"
export IOTCA_OPERATOR_TOKEN IOTCA_INTERNAL_TOKEN
export IOTCA_ETCD_ENDPOINTS="$ETCD_ENDPOINT"
export IOTCA_REGISTRY="${SVC_ADDR[registry]}"
export IOTCA_ASSOCIATION="${SVC_ADDR[association]}"
export IOTCA_LOG_LEVEL="${IOTCA_LOG_LEVEL:-info}"

# ---------------------------------------------------------------------------
# Process bookkeeping: every started process is stopped on exit.
# ---------------------------------------------------------------------------
PIDS=()
declare -A PID_NAME

# Each process runs in its own session (see start), so signalling its process
# group also reaches anything it started.
signal_group() {
  kill "-$1" -- "-$2" 2>/dev/null
}

stop_all() {
  local i pid alive
  # Newest first: the services go before the etcd they use.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    signal_group TERM "${PIDS[i]}" || true
  done
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${PIDS[@]}"; do
      signal_group 0 "$pid" && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do
    if signal_group 0 "$pid"; then
      echo "${PID_NAME[$pid]} (pid $pid) did not stop within 10 s; killing it" >&2
      signal_group KILL "$pid" || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

on_signal() {
  trap - INT TERM HUP
  echo
  echo "stopping ${#PIDS[@]} process(es)..."
  stop_all
  echo "stopped; logs are in $LOG_DIR/"
  exit 0
}

# start NAME COMMAND...: runs COMMAND in the background, output to
# .run/logs/NAME.log, in a session of its own: the terminal's Ctrl-C reaches
# only this script, and stop_all stops everything in order.
start() {
  local name="$1"
  shift
  setsid "$@" >"$LOG_DIR/$name.log" 2>&1 </dev/null &
  PIDS+=("$!")
  PID_NAME[$!]="$name"
}

show_log() {
  echo "---- last lines of $LOG_DIR/$1.log ----" >&2
  tail -n 30 "$LOG_DIR/$1.log" >&2 || true
}

trap stop_all EXIT
trap on_signal INT TERM HUP

# ---------------------------------------------------------------------------
# etcd. --max-txn-ops/--max-request-bytes: the association service commits a
# whole CSV file (up to 10,000 rows: ~10,000 puts, ~2.5 MB, more when it
# replaces bindings of deleted CAs) in ONE transaction, far over etcd's
# defaults (128 ops, 1.5 MiB). deploy/k8s's etcd must use the same limits.
# ---------------------------------------------------------------------------
start etcd etcd --name iotca-dev --data-dir "$ETCD_DATA" \
  --logger zap --log-level warn \
  --listen-client-urls "$ETCD_ENDPOINT" --advertise-client-urls "$ETCD_ENDPOINT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "iotca-dev=http://127.0.0.1:$ETCD_PEER_PORT" \
  --max-txn-ops 24576 --max-request-bytes 16777216
etcd_pid="${PIDS[0]}"

for i in $(seq 1 300); do
  if curl -fsS --max-time 1 "$ETCD_ENDPOINT/health" 2>/dev/null | grep -q '"health":"true"'; then
    break
  fi
  if ! kill -0 "$etcd_pid" 2>/dev/null; then
    show_log etcd
    iotca_die "etcd exited during start-up (log: $LOG_DIR/etcd.log)"
  fi
  if ((i == 300)); then
    show_log etcd
    iotca_die "etcd did not report healthy on $ETCD_ENDPOINT/health within 30 s"
  fi
  sleep 0.1
done

# ---------------------------------------------------------------------------
# The services.
# ---------------------------------------------------------------------------
for name in "${TO_START[@]}"; do
  start "$name" env "${SVC_LISTEN_VAR[$name]}=${SVC_ADDR[$name]}" "$BUILD_DIR/${SVC_BIN[$name]}"
done

# Wait until each service listens (or fails).
for ((n = 1; n < ${#PIDS[@]}; n++)); do
  pid="${PIDS[n]}"
  name="${PID_NAME[$pid]}"
  addr="${SVC_ADDR[$name]}"
  for i in $(seq 1 150); do
    port_in_use "$(addr_host "$addr")" "$(addr_port "$addr")" && break
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log "$name"
      iotca_die "$name exited during start-up (log: $LOG_DIR/$name.log)"
    fi
    if ((i == 150)); then
      echo "warning: $name is running but not listening on $addr after 15 s; see $LOG_DIR/$name.log" >&2
    fi
    sleep 0.1
  done
done

# ---------------------------------------------------------------------------
# What runs where.
# ---------------------------------------------------------------------------
cli="$BUILD_DIR/tools/iotca"
{
  echo
  echo "iotca development suite (build: $BUILD_DIR)"
  printf '  %-12s %-28s log %s\n' etcd "$ETCD_ENDPOINT" "$LOG_DIR/etcd.log"
  printf '  %-12s %s\n' "" "data $ETCD_DATA (scripts/run.sh --reset starts empty)"
  for name in "${SVC_NAMES[@]}"; do
    if [[ -n "${SVC_NOTE[$name]:-}" ]]; then
      printf '  %-12s %s\n' "$name" "${SVC_NOTE[$name]}"
    else
      printf '  %-12s %-28s log %s\n' "$name" "${SVC_ADDR[$name]}" "$LOG_DIR/$name.log"
    fi
  done
  echo "Tokens (generated once, kept in $SECRETS_DIR/):"
  echo "  operator token  $IOTCA_OPERATOR_TOKEN  (IOTCA_OPERATOR_TOKEN)"
  echo "  internal token  $SECRETS_DIR/internal-token  (IOTCA_INTERNAL_TOKEN)"
  echo "Use it from another shell:"
  echo "  export IOTCA_TOKEN=\"\$(cat $SECRETS_DIR/operator-token)\""
  echo "  export IOTCA_REGISTRY=$IOTCA_REGISTRY IOTCA_ASSOCIATION=$IOTCA_ASSOCIATION"
  if [[ -x "$cli" ]]; then
    echo "Create the first account and its API key (as the operator):"
    echo "  $cli account create acme"
    echo "  $cli key create --account <the account id printed above>"
    echo "Then act as that tenant with its key:"
    echo "  export IOTCA_TOKEN=<the API key>; $cli regcode; $cli ca --help"
  else
    echo "  (the iotca CLI, $cli, is not built yet)"
  fi
  if [[ -z "${SVC_NOTE[edge]:-}" ]]; then
    echo "Devices connect to the edge with MQTT over TLS, e.g.:"
    echo "  mosquitto_sub -h $(addr_host "${SVC_ADDR[edge]}") -p $(addr_port "${SVC_ADDR[edge]}") --cafile $IOTCA_EDGE_TLS_CERT \\"
    echo "    --cert PK_DN_SN.cer --key PK_DN_SN.key -i 'dev|securemode=2|' -t '/ext/#' -v"
    echo "  edge probes and metrics: http://$IOTCA_EDGE_PROBE_LISTEN/readyz  /metrics"
    echo "  what devices publish:    $BUILD_DIR/tools/iotca-tap listen $IOTCA_EDGE_UPSTREAM"
    echo "  send to a device:        $BUILD_DIR/tools/iotca-tap send $IOTCA_EDGE_DOWNSTREAM --pk PK --dn DN --topic /PK/DN/user/get --payload hi"
  fi
  echo "Press Ctrl-C to stop everything."
}

# Run until Ctrl-C (on_signal exits 0) or until a process dies on its own.
while true; do
  status=0
  exited=""
  wait -n -p exited "${PIDS[@]}" || status=$?
  [[ -n "$exited" ]] || continue
  name="${PID_NAME[$exited]}"
  show_log "$name"
  echo "error: $name (pid $exited) exited with status $status; stopping the rest" >&2
  exit 1
done
