#!/usr/bin/env bash
# Configures and builds iotca with CMake.
#
#   scripts/build.sh                     -> build/
#   IOTCA_SANITIZE=ON scripts/build.sh   -> build-asan/ (ASan + UBSan)
#
# Environment:
#   IOTCA_SANITIZE  ON|OFF (default OFF)  AddressSanitizer + UndefinedBehaviorSanitizer
#   IOTCA_WERROR    ON|OFF (default OFF)  compiler warnings are errors (CI uses ON)
#   IOTCA_TESTS     ON|OFF (default ON)   build the tests
#   IOTCA_BUILD_DIR  build directory, overriding the two defaults above
# Extra arguments are passed to the CMake configure step (e.g. -DIOTCA_FUZZ=ON).
# The last line printed is the build directory.
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sanitize="$(iotca_bool "${IOTCA_SANITIZE:-OFF}")"
werror="$(iotca_bool "${IOTCA_WERROR:-OFF}")"
tests="$(iotca_bool "${IOTCA_TESTS:-ON}")"
build_dir="$(iotca_build_dir)"

# No -G: a new build dir gets CMake's default generator (Unix Makefiles), an
# existing one keeps the generator it was configured with.
cmake -S "$IOTCA_ROOT" -B "$build_dir" \
  -DIOTCA_SANITIZE="$sanitize" \
  -DIOTCA_WERROR="$werror" \
  -DIOTCA_TESTS="$tests" \
  "$@"
cmake --build "$build_dir" -j"$(nproc)"

echo "build dir: $build_dir"
