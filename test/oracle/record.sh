#!/usr/bin/env bash
# Re-records the kernel results of every trace of the corpus: test/traces/NAME.trace.jsonl is
# replayed on this machine's kernel by the kernel oracle, and what it printed, headed by
# {"kernel": "<uname -r>"}, replaces test/traces/NAME.kernel.jsonl. test/oracle/corpus.test.ts
# compares the simulator with these recordings on every machine.
#
# Usage: bash test/oracle/record.sh [TRACE...]   (no argument: every trace of test/traces/)
#
# It refuses to run without /dev/kvm (read-write) and a C compiler, since a recording made
# without them would not be this kernel's answer to the KVM calls. A trace whose `expect` the
# kernel does not meet is still recorded (the recording is the truth), and reported; the exit
# status is then 1. A trace the oracle refuses (exit 2) keeps its old recording; exit status 2.
set -uo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
traces_dir="$(cd "$dir/../traces" && pwd)"

if [ "$(uname -s)" != Linux ]; then
	echo "record.sh: this is $(uname -s), not Linux: there is no Linux kernel here to record." >&2
	exit 1
fi
if [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "record.sh: /dev/kvm is missing or not readable and writable by $(id -un): nothing recorded." >&2
	echo "record.sh: the recordings must come from a machine where the kernel oracle can use KVM." >&2
	exit 1
fi
if ! command -v "${CC:-cc}" >/dev/null 2>&1; then
	echo "record.sh: no C compiler \`${CC:-cc}\` on this machine: the kernel oracle cannot be built; nothing recorded." >&2
	exit 1
fi
bash "$dir/build.sh" >/dev/null || { echo "record.sh: test/oracle/build.sh failed; nothing recorded." >&2; exit 1; }

if [ $# -eq 0 ]; then
	set -- "$traces_dir"/*.trace.jsonl
fi
status=0
for trace in "$@"; do
	case "$trace" in
	*.trace.jsonl) ;;
	*) echo "record.sh: $trace: not a NAME.trace.jsonl file" >&2; status=2; continue ;;
	esac
	recording="${trace%.trace.jsonl}.kernel.jsonl"
	tmp="$(mktemp "${recording}.XXXXXX")"
	"$dir/build/cocosim-oracle" --header "$trace" >"$tmp"
	rc=$?
	case $rc in
	0)
		mv "$tmp" "$recording"
		echo "recorded $(basename "$recording") ($(($(wc -l <"$recording") - 1)) calls)"
		;;
	1)
		mv "$tmp" "$recording"
		echo "recorded $(basename "$recording"), but the kernel did not meet some expectations of $(basename "$trace") (above)" >&2
		[ $status -eq 0 ] && status=1
		;;
	*)
		rm -f "$tmp"
		echo "record.sh: the oracle could not replay $(basename "$trace") (exit $rc); its recording is unchanged" >&2
		status=2
		;;
	esac
done
exit $status
