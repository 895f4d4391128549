#!/usr/bin/env bash
# make demo: start a devcluster seeded with the demo workloads, then run
# kubefwd against it. Ctrl-C stops both; nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${TMPDIR:-/tmp}/kubefwd-demo.XXXXXX")"
kubeconfig="$work/kubeconfig"
cluster_pid=""
kubefwd_pid=""

cleanup() {
	trap - EXIT INT TERM
	[ -n "$kubefwd_pid" ] && kill -TERM "$kubefwd_pid" 2>/dev/null && wait "$kubefwd_pid" 2>/dev/null
	[ -n "$cluster_pid" ] && kill -TERM "$cluster_pid" 2>/dev/null && wait "$cluster_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo: building kubefwd and the devcluster"
go build -o "$work/kubefwd" ./cmd/kubefwd
go build -o "$work/devcluster" ./test/devcluster
bindir="$(go run ./test/devcluster build | sed -n 's/^binaries for .* in //p')"

"$work/devcluster" up --kubeconfig "$kubeconfig" --seed demo >"$work/up.out" &
cluster_pid=$!
until grep -q '^READY' "$work/up.out" 2>/dev/null; do
	if ! kill -0 "$cluster_pid" 2>/dev/null; then
		wait "$cluster_pid" || true
		cluster_pid=""
		echo "demo: the devcluster failed to start (see above)" >&2
		exit 1
	fi
	sleep 0.2
done
cat "$work/up.out"
cat <<MSG

demo: the cluster is ready. From another terminal:
  $bindir/kubectl --kubeconfig $kubeconfig get svc -A
  $bindir/kubectl --kubeconfig $kubeconfig -n demo port-forward svc/web 18080:80

MSG

# Until the forwarder exists, its verb is missing from kubefwd's command list.
if "$work/kubefwd" --help | grep -qE '^[[:space:]]+svc[[:space:]]'; then
	echo "demo: running kubefwd svc -n demo,demo2 (Ctrl-C stops everything)"
	"$work/kubefwd" svc -n demo,demo2 --kubeconfig "$kubeconfig" &
	kubefwd_pid=$!
	wait "$kubefwd_pid"
	kubefwd_pid=""
else
	echo "demo: kubefwd svc is not implemented yet; the cluster stays up until Ctrl-C"
	wait "$cluster_pid"
fi
