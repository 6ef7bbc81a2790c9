#!/usr/bin/env bash
# THE test command: installs missing packages, builds, runs every test.
#
#   scripts/test.sh                       all tests, build/
#   scripts/test.sh -L unit               extra arguments go to ctest
#   IOTCA_SANITIZE=ON scripts/test.sh     ASan + UBSan build in build-asan/
#   IOTCA_WERROR=ON scripts/test.sh       warnings are errors (as in CI)
#
# Exits with ctest's status.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$IOTCA_ROOT/scripts/install-deps.sh"
"$IOTCA_ROOT/scripts/build.sh"
build_dir="$(iotca_build_dir)"

if [[ "$(iotca_bool "${IOTCA_SANITIZE:-OFF}")" == ON ]]; then
  iotca_sanitizer_env
  echo "sanitizers: ASAN_OPTIONS=$ASAN_OPTIONS UBSAN_OPTIONS=$UBSAN_OPTIONS LSAN_OPTIONS=${LSAN_OPTIONS:-}"
fi

cd "$build_dir"
exec ctest --output-on-failure --no-tests=error -j2 --timeout 300 "$@"
