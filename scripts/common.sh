# shellcheck shell=bash
# Shared helpers for the developer scripts. Sourced, not run:
#   . "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The repository root, from this file's own location (works from any cwd).
IOTCA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export IOTCA_ROOT

# iotca_bool VALUE -> prints ON or OFF (accepts ON/OFF, 1/0, true/false, yes/no).
iotca_bool() {
  case "${1,,}" in
    on | 1 | true | yes | y) echo ON ;;
    off | 0 | false | no | n | '') echo OFF ;;
    *)
      echo "error: '$1' is not a boolean (use ON or OFF)" >&2
      return 1
      ;;
  esac
}

# The CMake build directory for the current environment:
#   IOTCA_BUILD_DIR if set, else build-asan/ when IOTCA_SANITIZE=ON, else build/.
iotca_build_dir() {
  local sanitize
  sanitize="$(iotca_bool "${IOTCA_SANITIZE:-OFF}")" || return 1
  if [[ -n "${IOTCA_BUILD_DIR:-}" ]]; then
    case "$IOTCA_BUILD_DIR" in
      /*) echo "$IOTCA_BUILD_DIR" ;;
      *) echo "$IOTCA_ROOT/$IOTCA_BUILD_DIR" ;;
    esac
  elif [[ "$sanitize" == ON ]]; then
    echo "$IOTCA_ROOT/build-asan"
  else
    echo "$IOTCA_ROOT/build"
  fi
}

# Runtime options for binaries built with IOTCA_SANITIZE=ON. Values already
# in the environment win. tests/lsan.supp holds the LeakSanitizer
# suppressions for third-party libraries.
iotca_sanitizer_env() {
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  if [[ -z "${LSAN_OPTIONS:-}" && -f "$IOTCA_ROOT/tests/lsan.supp" ]]; then
    export LSAN_OPTIONS="suppressions=$IOTCA_ROOT/tests/lsan.supp:print_suppressions=0"
  fi
}

iotca_die() {
  echo "error: $*" >&2
  exit 1
}
