# bench/lib.sh: what the bench scripts share, sourced by each after it defines `die` (and, for
# parse_label, sets LABEL to its default).
#
#   parse_label "$@"   reads --label NAME (or --label=NAME) into LABEL; -h/--help prints the
#                      calling script's header comment and exits; anything else is refused.
#   free_port          a free TCP port on 127.0.0.1
#   wait_up PID SECONDS URL [CURL_ARGS...]
#                      waits until URL answers 2xx; dies, printing the logs in $WORK, when the
#                      process PID has exited or SECONDS have passed.
parse_label() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --label) LABEL="${2:?--label needs a value}"; shift 2 ;;
        --label=*) LABEL="${1#--label=}"; shift ;;
        -h | --help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
        esac
    done
    [[ "$LABEL" =~ ^[a-z0-9-]+$ ]] || die "--label takes lowercase letters, digits and dashes"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_up() {
    local pid="$1" secs="$2" url="$3" i
    shift 3
    for ((i = 0; i < secs * 10; i++)); do
        curl -sf "$@" "$url" >/dev/null && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$WORK"/*.log >&2 2>/dev/null || true
            die "the server for $url did not start"
        fi
        sleep 0.1
    done
    die "no answer from $url in $secs s"
}
