#!/usr/bin/env bash
# make demo: start a devcluster seeded with the demo workloads, then run
# kubefwd against it. kubefwd runs in a private mount namespace whose
# /etc/hosts is a copy, so the demo never touches this machine's own hosts
# file. Ctrl-C stops both; nothing is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d "${TMPDIR:-/tmp}/kubefwd-demo.XXXXXX")"
kubeconfig="$work/kubeconfig"
cluster_pid=""
kubefwd_pid=""
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo" # names need /etc/hosts and ports below 1024 need root
fi

cleanup() {
	trap - EXIT INT TERM
	if [ -n "$kubefwd_pid" ]; then
		# Ctrl-C reached kubefwd too; give it a moment to stop in order.
		for _ in $(seq 1 30); do
			kill -0 "$kubefwd_pid" 2>/dev/null || break
			sleep 0.1
		done
		$sudo kill -TERM "$kubefwd_pid" 2>/dev/null || true
		wait "$kubefwd_pid" 2>/dev/null || true
	fi
	if [ -n "$cluster_pid" ]; then
		kill -TERM "$cluster_pid" 2>/dev/null || true
		wait "$cluster_pid" 2>/dev/null || true
	fi
	$sudo rm -rf "$work"
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

# kubefwd in a private mount namespace, with a copy of /etc/hosts.
cp /etc/hosts "$work/hosts"
echo "demo: running kubefwd svc -n demo,demo2 (its /etc/hosts is a private copy)"
$sudo unshare -m --propagation private sh -c \
	'mount --bind "$1" /etc/hosts && exec "$2" svc -n demo,demo2 --kubeconfig "$3" --state-file "$4"' \
	sh "$work/hosts" "$work/kubefwd" "$kubeconfig" "$work/state.json" &
kubefwd_pid=$!

# Wait for the names, then show them working from inside the namespace.
for _ in $(seq 1 100); do
	grep -q ' web\.demo2 ' "$work/hosts" 2>/dev/null && break
	sleep 0.1
done
sleep 0.5
inside="$sudo nsenter -t $kubefwd_pid -m"
if command -v curl >/dev/null; then
	for url in http://web/ http://web.demo2/ http://db-1.db:5432/ http://legacy:8080/; do
		printf 'demo: curl %-22s → %s\n' "$url" "$($inside curl -s --max-time 5 "$url" || echo 'no answer')"
	done
fi
cat <<MSG

demo: kubefwd is forwarding. Try more from another terminal, inside its namespace:
  $inside curl http://web/
  $inside sh          # a shell where every demo name resolves
and the cluster itself:
  $bindir/kubectl --kubeconfig $kubeconfig get svc -A
Ctrl-C stops kubefwd and the cluster.
MSG
wait "$kubefwd_pid"
kubefwd_pid=""
