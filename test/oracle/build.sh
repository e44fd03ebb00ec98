#!/usr/bin/env bash
# Builds the kernel oracle (test/oracle/build/cocosim-oracle) with the system C compiler only.
# Usage: bash test/oracle/build.sh   (from anywhere; CC overrides the compiler)
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$dir/build"
# Build beside the binary and rename it into place: tests build it in parallel with runs of it,
# and a rename never leaves a half-written executable behind.
tmp="$dir/build/cocosim-oracle.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"${CC:-cc}" -O2 -Wall -Wextra -std=gnu11 -o "$tmp" \
	"$dir/oracle.c" "$dir/json.c" "$dir/sha256.c"
mv -f "$tmp" "$dir/build/cocosim-oracle"
echo "built $dir/build/cocosim-oracle"
