#!/bin/sh
# Runs every tests/test_*.sh against calc.sh; prints TAP; exits 1 on a failure.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/calc.sh"
n=0
failed=0
check() {
    n=$((n + 1))
    if [ "$2" = "$3" ]; then
        echo "ok $n - $1"
    else
        echo "not ok $n - $1: expected $2, got $3"
        failed=$((failed + 1))
    fi
}
for t in "$here"/tests/test_*.sh; do
    . "$t"
done
echo "1..$n"
echo "$((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
