#!/usr/bin/env bash
# Fails when git tracks a compiled program (ELF, Mach-O, PE, or any binary
# file with the executable bit) or any binary file over 1 MB, so build
# outputs committed by accident cannot come back unnoticed. Shell scripts
# with +x are text and pass. It checks the index, i.e. what a commit would
# hold; run from anywhere inside the repository.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

limit=$((1024 * 1024))
empty_tree=$(git hash-object -t tree /dev/null)
bad=0

# git's own rule decides what is binary (a NUL byte in the first 8000
# bytes, or a .gitattributes setting): numstat prints "-" for those.
while IFS= read -r -d '' record; do
	added=${record%%$'\t'*}
	[ "$added" = "-" ] || continue
	path=${record#*$'\t'*$'\t'}
	read -r mode object _ < <(git ls-files -s -- "$path")
	size=$(git cat-file -s "$object")
	# (head stops reading early: keep git's SIGPIPE out of pipefail.)
	magic=$(head -c 4 < <(git cat-file blob "$object") | od -An -tx1 | tr -d ' \n')
	why=""
	case "$magic" in
	7f454c46) why="an ELF executable" ;;
	feedface | feedfacf | cefaedfe | cffaedfe | cafebabe) why="a Mach-O executable" ;;
	4d5a*) why="a Windows (PE) executable" ;;
	esac
	if [ -z "$why" ] && [ "$mode" = "100755" ]; then
		why="a binary file with the executable bit"
	fi
	if [ -z "$why" ] && [ "$size" -gt "$limit" ]; then
		why="a binary file of $size bytes (the limit is $limit)"
	fi
	if [ -n "$why" ]; then
		printf 'check-tracked: %s is %s; build outputs and large binaries do not belong in git (git rm --cached it, and ignore it in .gitignore)\n' "$path" "$why" >&2
		bad=1
	fi
done < <(git diff --cached --numstat --no-renames -z "$empty_tree")

exit "$bad"
