#!/usr/bin/env bash
# Builds the kernel oracle (test/oracle/build/cocosim-oracle) with the system C compiler only.
# Usage: bash test/oracle/build.sh   (from anywhere; CC overrides the compiler)
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$dir/build"
"${CC:-cc}" -O2 -Wall -Wextra -std=gnu11 -o "$dir/build/cocosim-oracle" \
	"$dir/oracle.c" "$dir/json.c" "$dir/sha256.c"
echo "built $dir/build/cocosim-oracle"
