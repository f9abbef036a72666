# A tiny shell library: the demo's sample project.

add() {
    echo $(($1 + $2))
}

mul() {
    echo $(($1 * $2))
}

clamp() {
    if [ "$1" -lt "$2" ]; then
        echo "$2"
    elif [ "$1" -gt "$3" ]; then
        echo "$3"
    else
        echo "$1"
    fi
}
