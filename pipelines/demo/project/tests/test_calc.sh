# Tests for calc.sh: each `check NAME EXPECTED ACTUAL` is one case.

check add 5 "$(add 2 3)"
check add-negative -1 "$(add 2 -3)"
check mul 12 "$(mul 3 4)"
check clamp-low 0 "$(clamp -5 0 10)"
check clamp-high 10 "$(clamp 50 0 10)"
check clamp-inside 7 "$(clamp 7 0 10)"
