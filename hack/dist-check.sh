#!/usr/bin/env bash
# `make dist-check`: the release artifacts, checked as a user would use them.
#  1. the release tool's own tests and vet; `make dist` for this platform and
#     one cross target; SHA256SUMS verifies; the binary prints the stamped
#     version, commit and date;
#  2. a second build of this platform, from a copy of the tree at another
#     path with an empty build cache, gives the same bytes (binary, archive,
#     packages, SBOM);
#  3. the archives hold the program, README, completions and man pages; the
#     completions load in bash; every man page renders (groff, man -l);
#  4. (root, Debian-like) the .deb installs with dpkg -i, kubefwd runs from
#     /usr/bin, nothing is enabled, the packaged unit verifies, and dpkg -r
#     removes it all, leaving no helper running and no kubefwd block in
#     /etc/hosts (read only); the pre-removal script stops a helper that
#     systemd runs (played in a private mount namespace with a stand-in
#     systemctl);
#  5. goreleaser check on .goreleaser.yaml (pinned).
# Needs: go, git, tar, unzip-free (zip is read by go), groff or man; root and
# dpkg for step 4, else that step is skipped with the reason (with CI=true
# a skip is a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
GORELEASER_VERSION=${GORELEASER_VERSION:-v2.15.1}
say() { printf 'dist-check: %s\n' "$*"; }
fail() {
	printf 'dist-check: FAIL: %s\n' "$*" >&2
	exit 1
}
skip() {
	if [ -n "${CI:-}" ]; then fail "$* (CI may not skip)"; fi
	say "SKIP: $*"
}

tmp=$(mktemp -d)
installed=""
cleanup() {
	# A check that failed with the package installed removes it.
	if [ -n "$installed" ]; then dpkg --purge kubefwd >/dev/null 2>&1 || true; fi
	chmod -R u+w "$tmp" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

host="$($GO env GOOS)/$($GO env GOARCH)"
cross=windows/arm64
[ "$host" != "$cross" ] || cross=linux/arm64
version=$(git describe --tags --always --dirty)
commit=$(git rev-parse HEAD)

say "release tool: go vet and go test"
$GO -C release vet ./...
$GO -C release test -count=1 ./...

say "make dist TARGETS=\"$host $cross\" (version $version)"
make --no-print-directory dist GO="$GO" TARGETS="$host $cross" >"$tmp/dist.log" 2>&1 || {
	cat "$tmp/dist.log" >&2
	fail "make dist"
}
tail -n 1 "$tmp/dist.log"
(cd dist && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not verify"
say "SHA256SUMS verifies ($(wc -l <dist/SHA256SUMS) files)"

fileversion=${version#v}
hostdir=${host%/*}_${host#*/}
bin=dist/bin/$hostdir/kubefwd
[ "$($bin version --short)" = "$version" ] || fail "kubefwd version --short says $($bin version --short), not $version"
$bin version >"$tmp/version"
grep -q "commit: *$commit" "$tmp/version" || fail "kubefwd version does not name commit $commit: $(cat "$tmp/version")"
date=$(TZ=UTC0 git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ HEAD)
grep -q "date: *$date" "$tmp/version" || fail "kubefwd version does not give the commit's date $date: $(cat "$tmp/version")"
say "kubefwd version --short: $version; commit and date stamped"
# The release tool's dependencies stay out of kubefwd.
if $GO version -m "$bin" | grep -E 'goreleaser/nfpm|go-md2man'; then fail "kubefwd links the release tool's dependencies"; fi
if GOOS=${host%/*} GOARCH=${host#*/} $GO list -deps ./cmd/kubefwd | grep -x 'github.com/spf13/cobra/doc'; then fail "kubefwd imports cobra/doc"; fi
for f in kubefwd.krew.yaml kubefwd.rb kubefwd.scoop.json; do
	[ -s "dist/$f" ] || fail "dist/$f was not rendered"
done

say "a second build of $host from a copy at another path, with an empty build cache"
copy=$tmp/copy/kubefwd
mkdir -p "$copy"
tar --exclude=./dist --exclude=./bin -cf - . | tar -xf - -C "$copy"
(cd "$copy" && GOCACHE=$tmp/gocache make --no-print-directory dist GO="$GO" TARGETS="$host" VERSION="$version" >"$tmp/dist2.log" 2>&1) || {
	cat "$tmp/dist2.log" >&2
	fail "the second make dist"
}
# Every artifact of the second build (the host platform's) is in the first
# with the same bytes; only the manifests, which list the platforms built,
# may differ.
grep -vE '  kubefwd\.(krew\.yaml|rb|scoop\.json)$' "$copy/dist/SHA256SUMS" >"$tmp/sums2"
[ "$(wc -l <"$tmp/sums2")" -ge 6 ] || fail "the second build made only: $(cat "$tmp/sums2")"
missing=$(grep -vxF -f dist/SHA256SUMS "$tmp/sums2" || true)
[ -z "$missing" ] || fail "the second build differs from the first in: $missing"
say "identical: $(awk '{print $2}' "$tmp/sums2" | tr '\n' ' ')"
# The cold build's cache and tree are several GB: free them now, not at exit.
rm -rf "$tmp/gocache" "$tmp/copy"

say "archives"
archive=dist/kubefwd_${fileversion}_${hostdir}.tar.gz
tar -tzf "$archive" | sort >"$tmp/contents"
for f in kubefwd README.md completions/kubefwd.bash completions/_kubefwd completions/kubefwd.fish completions/kubefwd.ps1 man/kubefwd.1 man/kubefwd-svc.1; do
	grep -qx "$f" "$tmp/contents" || fail "$archive lacks $f"
done
tar -tvzf "$archive" | awk '$2 != "0/0" { bad = 1; print "not root-owned: " $0 } END { exit bad }' || fail "$archive has entries not owned by 0/0"
[ -f LICENSE ] && { grep -qx LICENSE "$tmp/contents" || fail "$archive lacks LICENSE"; }
zipfile=dist/kubefwd_${fileversion}_${cross%/*}_${cross#*/}.zip
[ "${cross%/*}" != windows ] || [ -s "$zipfile" ] || fail "$zipfile was not written"
mkdir "$tmp/x" && tar -xzf "$archive" -C "$tmp/x"

say "completions load in bash; man pages render"
bash -c 'source <("$1" completion bash) && complete -p kubefwd' _ "$bin" >"$tmp/complete" || fail "the bash completion does not load"
grep -q 'kubefwd$' "$tmp/complete" || fail "complete -p kubefwd: $(cat "$tmp/complete")"
bash -c 'source "$1" && complete -p kubefwd' _ "$tmp/x/completions/kubefwd.bash" >/dev/null || fail "the archive's bash completion does not load"
if command -v zsh >/dev/null; then zsh -n "$tmp/x/completions/_kubefwd" || fail "the zsh completion does not parse"; fi
if command -v fish >/dev/null; then fish -n "$tmp/x/completions/kubefwd.fish" || fail "the fish completion does not parse"; fi
pages=0
for page in "$tmp"/x/man/*.1; do
	if command -v groff >/dev/null; then
		out=$(groff -k -man -Tutf8 -ww "$page" 2>&1 >/dev/null) || fail "groff cannot render $page" # -k: the pages are UTF-8
		[ -z "$out" ] || fail "groff warns on $(basename "$page"): $out"
	fi
	if command -v man >/dev/null; then
		MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q . || fail "man -l cannot render $page"
	fi
	pages=$((pages + 1))
done
command -v groff >/dev/null || command -v man >/dev/null || fail "neither groff nor man is installed to render the man pages"
say "$pages man pages render"

deb_check() {
	local arch deb
	arch=$(dpkg --print-architecture)
	deb=$(ls dist/kubefwd_*_"$arch".deb)
	if dpkg -s kubefwd >/dev/null 2>&1 || [ -e /usr/bin/kubefwd ]; then
		skip "kubefwd is installed on this machine already; not installing $deb over it"
		return
	fi
	say "dpkg -i $deb"
	installed=1
	dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || {
		cat "$tmp/dpkg.log" >&2
		fail "dpkg -i $deb"
	}
	[ "$(/usr/bin/kubefwd version --short)" = "$version" ] || fail "/usr/bin/kubefwd version --short: $(/usr/bin/kubefwd version --short)"
	[ "$(stat -c %U:%a /usr/bin/kubefwd)" = root:755 ] || fail "/usr/bin/kubefwd is $(stat -c %U:%a /usr/bin/kubefwd), not root:755"
	dpkg -L kubefwd >"$tmp/files"
	for f in /usr/bin/kubefwd /usr/lib/systemd/system/kubefwd-helper.service /usr/share/bash-completion/completions/kubefwd \
		/usr/share/zsh/vendor-completions/_kubefwd /usr/share/fish/vendor_completions.d/kubefwd.fish \
		/usr/share/man/man1/kubefwd.1 /usr/share/man/man1/kubefwd-svc.1 /usr/share/doc/kubefwd/README.md; do
		grep -qx "$f" "$tmp/files" || fail "the package does not hold $f"
	done
	# (A minimal image's dpkg may be told to leave out /usr/share/man and
	# /usr/share/doc; these it may not.)
	for f in /usr/lib/systemd/system/kubefwd-helper.service /usr/share/bash-completion/completions/kubefwd; do
		[ -f "$f" ] || fail "the package did not install $f"
	done
	if ls /etc/systemd/system/*.wants/kubefwd-helper.service >/dev/null 2>&1; then
		fail "installing the package enabled the helper"
	fi
	if command -v systemd-analyze >/dev/null; then
		out=$(systemd-analyze verify /usr/lib/systemd/system/kubefwd-helper.service 2>&1) || fail "systemd-analyze verify: $out"
		! grep -q kubefwd-helper <<<"$out" || fail "systemd-analyze verify: $out"
	fi
	bash -c 'source /usr/share/bash-completion/completions/kubefwd && complete -p kubefwd' >/dev/null || fail "the installed bash completion does not load"
	if command -v man >/dev/null && [ -f /usr/share/man/man1/kubefwd-svc.1 ]; then
		MANWIDTH=80 man -P cat kubefwd-svc 2>/dev/null | grep -q -- --namespace || fail "man kubefwd-svc does not show the installed page"
	fi
	say "installed: /usr/bin/kubefwd runs, nothing enabled, unit verifies, completions and man pages in place"
	dpkg -r kubefwd >"$tmp/dpkg.log" 2>&1 || {
		cat "$tmp/dpkg.log" >&2
		fail "dpkg -r kubefwd"
	}
	if dpkg -s kubefwd >/dev/null 2>&1; then fail "dpkg -r left kubefwd in state $(dpkg-query -W -f='${Status}' kubefwd)"; fi
	installed=""
	for f in /usr/bin/kubefwd /usr/lib/systemd/system/kubefwd-helper.service /usr/share/man/man1/kubefwd.1 /usr/share/doc/kubefwd; do
		[ ! -e "$f" ] || fail "dpkg -r left $f"
	done
	if pgrep -f 'kubefwd helper run' >/dev/null; then fail "a helper still runs: $(pgrep -af 'kubefwd helper run')"; fi
	if grep -q '^# kubefwd begin' /etc/hosts; then fail "/etc/hosts has a kubefwd block"; fi
	say "dpkg -r: removed, no helper running, no kubefwd block in /etc/hosts"
}

preremove_check() {
	# The pre-removal script under a systemd that runs the packaged helper:
	# a private /run with /run/systemd/system and a stand-in systemctl.
	command -v unshare >/dev/null || {
		skip "unshare is not installed (util-linux): the pre-removal script is not played"
		return
	}
	mkdir -p "$tmp/fake"
	cat >"$tmp/fake/systemctl" <<-'EOF'
		#!/bin/sh
		echo "$*" >>"$SYSTEMCTL_LOG"
		[ "$1" != show ] || echo "${FRAGMENT}"
	EOF
	chmod +x "$tmp/fake/systemctl"
	play() { # fragment action → what systemctl was asked
		: >"$tmp/systemctl.log"
		# shellcheck disable=SC2016 # expanded by the inner shell
		unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && PATH="$1:$PATH" FRAGMENT="$2" SYSTEMCTL_LOG="$3" sh release/packaging/preremove.sh "$4"' \
			_ "$tmp/fake" "$1" "$tmp/systemctl.log" "$2"
		grep -v '^show' "$tmp/systemctl.log" || true
	}
	[ "$(play /usr/lib/systemd/system/kubefwd-helper.service remove)" = "disable --now kubefwd-helper.service" ] || fail "preremove (dpkg remove) did not stop the packaged helper"
	[ "$(play /usr/lib/systemd/system/kubefwd-helper.service 0)" = "disable --now kubefwd-helper.service" ] || fail "preremove (rpm erase) did not stop the packaged helper"
	[ -z "$(play /usr/lib/systemd/system/kubefwd-helper.service upgrade)" ] || fail "preremove stopped the helper on a dpkg upgrade"
	[ -z "$(play /usr/lib/systemd/system/kubefwd-helper.service 1)" ] || fail "preremove stopped the helper on an rpm upgrade"
	[ -z "$(play /etc/systemd/system/kubefwd-helper.service remove)" ] || fail "preremove stopped a helper installed by kubefwd helper install"
	say "preremove stops and disables the packaged helper on removal only, and leaves others alone"
}

if [ "$(id -u)" -ne 0 ]; then
	skip "not root: the .deb is not installed (sudo make dist-check)"
elif ! command -v dpkg >/dev/null; then
	skip "dpkg is not installed: the .deb is not installed"
else
	deb_check
	preremove_check
fi

say "goreleaser check ($GORELEASER_VERSION)"
$GO run "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION" check >"$tmp/goreleaser.log" 2>&1 || {
	cat "$tmp/goreleaser.log" >&2
	fail "goreleaser check"
}
say "PASS"
