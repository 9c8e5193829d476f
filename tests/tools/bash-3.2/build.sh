#!/usr/bin/env bash
# Prints the path of a bash 3.2 (the major version macOS ships as /bin/bash) on stdout:
# /bin/bash where it is one (macOS), else GNU bash 3.2.48 built once from the source
# tarball beside this script. The tests run app.sh under it (README: "Bash 3.2 and BSD tools").
#
#   bash32=$(tests/tools/bash-3.2/build.sh) && "$bash32" -n scripts/app.sh
#
# Cached in ${BASH32_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bash-3.2.48}; a second call is instant.
# Needs a C compiler and make (Debian: gcc, make); ~1 minute on 2 cores. Exit 1 with a message
# on stderr when it cannot build.
# Source: GNU bash 3.2.48 (GPL-2.0-or-later, see COPYING in the tarball), tarball made from the
# bminor/bash mirror, commit f1be666c7d78939ad775078d290bec2758fa29a2 ("Imported from
# ../bash-3.2.48.tar.gz"); sha256 5d9aa5504053ad412c7069749167d2166da2a8febcf142f67fe679f87db38b38.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${BASH32_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bash-3.2.48}
bin=$cache/bin/bash
# shellcheck disable=SC2016 # expanded by the candidate bash
is_bash32() { "$1" -c 'test "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}" = 3.2' 2>/dev/null; }
for candidate in /bin/bash "$bin"; do
	if [[ -x $candidate ]] && is_bash32 "$candidate"; then
		printf '%s\n' "$candidate"
		exit 0
	fi
done
for tool in cc make tar gzip; do
	command -v "$tool" >/dev/null || {
		echo "build.sh: '$tool' is missing; cannot build bash 3.2" >&2
		exit 1
	}
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$here/bash-3.2.48.tar.gz" -C "$work"
cd "$work/bash-3.2.48"
# The shipped y.tab.c predates a parse.y change; modern compilers reject the stale call.
sed 's/expand_prompt_string (result, Q_DOUBLE_QUOTES);/expand_prompt_string (result, Q_DOUBLE_QUOTES, 0);/' y.tab.c >y.tab.c.new
mv y.tab.c.new y.tab.c
touch y.tab.c
echo "build.sh: building bash 3.2.48 into $cache (once)" >&2
CFLAGS="-O1 -std=gnu89 -w" ./configure --without-bash-malloc --disable-nls >"$work/configure.log" 2>&1 || {
	tail -n 20 "$work/configure.log" >&2
	echo "build.sh: configure failed" >&2
	exit 1
}
# bash 3.2's makefiles race under parallel make now and then (seen once with -j2): a failed
# parallel build resumes serially, which costs nothing when it succeeds the first time.
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
if ! make -j"$jobs" bash >"$work/make.log" 2>&1; then
	echo "build.sh: make -j$jobs failed; retrying with -j1" >&2
	make -j1 bash >"$work/make.log" 2>&1 || {
		grep -m 5 -E 'error:|Error [0-9]' "$work/make.log" >&2 || tail -n 20 "$work/make.log" >&2
		echo "build.sh: make failed" >&2
		exit 1
	}
fi
mkdir -p "$cache/bin"
cp bash "$bin.tmp.$$" && mv "$bin.tmp.$$" "$bin"
is_bash32 "$bin" || {
	echo "build.sh: the built bash is not 3.2" >&2
	exit 1
}
printf '%s\n' "$bin"
