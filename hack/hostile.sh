#!/usr/bin/env bash
# The hostile-local-user suite: every TestHostile* test, in every package,
# played as root against synthetic invoking users (nobody, daemon) with real
# files, sockets and private mount namespaces. They skip when not root; this
# runs them as root and fails if any skipped or none ran.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "hostile: the suite plays other users and needs root (sudo make hostile)" >&2
	exit 1
fi
GO=${GO:-go}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
$GO test -race -count=1 -run '^TestHostile' -v ./... >"$log" 2>&1 || status=$?
grep -E '^(ok|FAIL|---)|^\s+--- (FAIL|SKIP)' "$log" | grep -v '^ok .*\[no tests to run\]' || true
ran=$(grep -cE '^--- PASS: TestHostile' "$log" || true)
skipped=$(grep -E -- '--- SKIP: TestHostile' "$log" || true)
if [ "$status" -ne 0 ]; then
	grep -B2 -A20 -E -- '--- FAIL' "$log" | head -200 >&2 || true
	echo "hostile: FAIL" >&2
	exit 1
fi
if [ -n "$skipped" ]; then
	echo "hostile: these tests skipped, and none may:" >&2
	echo "$skipped" >&2
	exit 1
fi
if [ "$ran" -eq 0 ]; then
	echo "hostile: no TestHostile test ran" >&2
	exit 1
fi
echo "hostile: $ran tests passed, none skipped"
