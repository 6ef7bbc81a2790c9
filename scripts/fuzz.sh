#!/usr/bin/env bash
# Fuzzes every parser for a bounded time: builds the libFuzzer targets
# (tests/fuzz, IOTCA_FUZZ=ON: clang, AddressSanitizer and UBSan on all the
# code) in build-fuzz/, then runs each from its seed corpus, two at a time.
# New inputs go to a scratch corpus, not into the repository. A crash stops
# with the target's report and leaves the input as
# tests/fuzz/crash-<target>-<hash>: fix the bug, then move the input into
# tests/fuzz/corpus/<target>/ so that the *_replay tests keep checking it.
#
#   scripts/fuzz.sh                  30 s per target
#   scripts/fuzz.sh --seconds 300    longer
#   scripts/fuzz.sh fuzz_mqtt        one target
#
# The sanitizer pass of the test command runs it with --seconds 20.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

seconds=30
only=()
while (($#)); do
  case "$1" in
    --seconds)
      seconds="${2:-}"
      [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || iotca_die "--seconds needs a positive number"
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    fuzz_*)
      only+=("$1")
      shift
      ;;
    *) iotca_die "unknown argument '$1' (try --help)" ;;
  esac
done

command -v clang >/dev/null || iotca_die "clang is missing: scripts/install-deps.sh installs it"
build="$IOTCA_ROOT/build-fuzz"
cmake -S "$IOTCA_ROOT" -B "$build" -DCMAKE_C_COMPILER=clang -DIOTCA_FUZZ=ON \
  -DIOTCA_TESTS=ON -DIOTCA_SANITIZE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_all >/dev/null ||
  iotca_die "building the fuzz targets failed: cmake --build $build --target fuzz_all"

targets=()
for corpus in "$IOTCA_ROOT"/tests/fuzz/corpus/fuzz_*; do
  name="$(basename "$corpus")"
  if ((${#only[@]})) && [[ ! " ${only[*]} " == *" $name "* ]]; then
    continue
  fi
  bin="$(find "$build/tests/fuzz" -maxdepth 1 -type f -name "$name" -perm -u+x | head -n 1)"
  [[ -n "$bin" ]] || iotca_die "no fuzz binary for $name in $build/tests/fuzz (is it registered with iotca_add_fuzz?)"
  targets+=("$name")
done
((${#targets[@]})) || iotca_die "no fuzz target matched"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/iotca-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1}:detect_leaks=1"

# run NAME: one target for $seconds; its log in $scratch/NAME.log.
run() {
  local name="$1" work="$scratch/$1"
  mkdir -p "$work/corpus"
  "$build/tests/fuzz/$name" "$work/corpus" "$IOTCA_ROOT/tests/fuzz/corpus/$name" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$IOTCA_ROOT/tests/fuzz/crash-$name-" \
    >"$scratch/$name.log" 2>&1
}

echo "fuzz: ${#targets[@]} target(s), $seconds s each, two at a time"
failed=()
pending=()
declare -A pid_of
for name in "${targets[@]}"; do
  run "$name" &
  pid_of[$name]=$!
  pending+=("$name")
  if ((${#pending[@]} == 2)); then
    for p in "${pending[@]}"; do
      wait "${pid_of[$p]}" || failed+=("$p")
    done
    pending=()
  fi
done
for p in "${pending[@]}"; do
  wait "${pid_of[$p]}" || failed+=("$p")
done

for name in "${targets[@]}"; do
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$name.log" | grep -o '[0-9]*$' || true)"
  printf '  %-18s %s\n' "$name" "${runs:-?} runs"
done
if ((${#failed[@]})); then
  for name in "${failed[@]}"; do
    echo "---- $name ----" >&2
    tail -n 60 "$scratch/$name.log" >&2
  done
  iotca_die "fuzzing found a problem in: ${failed[*]} (inputs: tests/fuzz/crash-*)"
fi
echo "fuzz: no crash, leak or timeout"
