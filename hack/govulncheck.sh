#!/usr/bin/env bash
# govulncheck at a pinned version against the Go vulnerability database.
#
# Where vuln.go.dev answers, that is the database. Where only the Go module
# proxy is reachable (CI here), the database is built from the OSV files of
# the golang.org/x/vulndb module, which is the repository vuln.go.dev is
# generated from: its cmd/indexdb (pinned) indexes them into the layout
# govulncheck reads with -db file://. The module proxy only knows that
# repository's commits as pseudo-versions, so "latest" is its newest commit
# the proxy has seen; the version used is printed.
#
# Environment: GO (default go), GOVULNCHECK_VERSION, VULNDB_VERSION (the
# data, default latest), VULNDB_TOOL_VERSION (cmd/indexdb), VULNDB_OFFLINE=1
# (skip vuln.go.dev even when it answers), and arguments for govulncheck
# (default ./...).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
GOVULNCHECK_VERSION=${GOVULNCHECK_VERSION:-v1.9.0}
VULNDB_VERSION=${VULNDB_VERSION:-latest}
VULNDB_TOOL_VERSION=${VULNDB_TOOL_VERSION:-v0.0.0-20261105234957-e22db6528018}
govulncheck=(golang.org/x/vuln/cmd/govulncheck@"$GOVULNCHECK_VERSION")
[ "$#" -gt 0 ] || set -- ./...

if [ "${VULNDB_OFFLINE:-}" != 1 ] && command -v curl >/dev/null &&
	curl -fsS --max-time 5 -o /dev/null https://vuln.go.dev/index/db.json 2>/dev/null; then
	echo "govulncheck $GOVULNCHECK_VERSION, database https://vuln.go.dev"
	exec "$GO" run "${govulncheck[@]}" "$@"
fi

# Resolve and fetch the data module outside this module, so that nothing
# here touches go.mod or go.sum.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
info=$(cd "$work" && GOFLAGS=-mod=mod "$GO" mod download -json "golang.org/x/vulndb@$VULNDB_VERSION")
version=$(sed -n 's/^\t"Version": "\(.*\)",$/\1/p' <<<"$info")
dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$info")
if [ -z "$version" ] || [ ! -d "$dir/data/osv" ]; then
	echo "govulncheck: golang.org/x/vulndb@$VULNDB_VERSION has no data/osv directory; cannot build the database" >&2
	exit 1
fi
db="${XDG_CACHE_HOME:-$HOME/.cache}/kubefwd-vulndb/$version"
if [ ! -f "$db/index/db.json" ]; then
	rm -rf "$db.tmp"
	mkdir -p "$(dirname "$db")"
	(cd "$work" && "$GO" run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_TOOL_VERSION" -vulns "$dir/data/osv" -out "$db.tmp")
	rm -rf "$db"
	mv "$db.tmp" "$db"
fi
echo "govulncheck $GOVULNCHECK_VERSION, database golang.org/x/vulndb@$version ($(ls "$dir/data/osv" | wc -l) entries; no network beyond the module proxy)"
"$GO" run "${govulncheck[@]}" -db "file://$db" "$@"
