# bench/label.sh: the options bench/run.sh and bench/instructions.sh share, sourced by both after
# they define `die` and set LABEL to their default.
#
#   parse_label "$@"   reads --label NAME (or --label=NAME) into LABEL; -h/--help prints the
#                      calling script's header comment and exits; anything else is refused.
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
