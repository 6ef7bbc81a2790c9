#!/usr/bin/env bash
# check-format.sh - fails when a C file in the tree differs from what
# clang-format (with the repository's .clang-format) would write.
# Fix with: clang-format -i <file>
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(git ls-files -- '*.c' '*.h')
if [[ ${#files[@]} -eq 0 ]]; then
  echo "no C files found" >&2
  exit 1
fi
bad=0
for f in "${files[@]}"; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (run: clang-format -i $f)"
    bad=$((bad + 1))
  fi
done
echo "$(( ${#files[@]} - bad )) passed, $bad failed"
[[ $bad -eq 0 ]]
