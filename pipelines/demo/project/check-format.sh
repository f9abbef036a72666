#!/bin/sh
# The sample project's formatting rules: no tabs, no trailing spaces, and a
# final newline in every shell file. Exits 1 listing the offenders.
here=$(cd "$(dirname "$0")" && pwd)
bad=0
for f in "$here"/*.sh "$here"/tests/*.sh; do
    if grep -n "$(printf '\t')" "$f" >/dev/null; then
        echo "$f: contains a tab"
        bad=1
    fi
    if grep -n ' $' "$f" >/dev/null; then
        echo "$f: trailing spaces"
        bad=1
    fi
    if [ -n "$(tail -c 1 "$f")" ]; then
        echo "$f: no final newline"
        bad=1
    fi
done
[ "$bad" -eq 0 ] && echo "formatting: clean"
exit "$bad"
