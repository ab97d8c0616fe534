#!/usr/bin/env bash
# tests/unit/test_completion.sh COMPLETION_FILE: sources leasehold's bash
# completion in a plain bash (no bash-completion package) and checks
# COMPREPLY for typical command lines.
set -u
# shellcheck source=/dev/null
source "$1" || exit 1
complete -p leasehold >/dev/null || { echo "FAIL: complete -p leasehold: not registered"; exit 1; }
failures=0
dir=$(mktemp -d "${TMPDIR:-/tmp}/leasehold-completion.XXXXXX")
trap 'rm -rf "$dir"' EXIT
touch "$dir/alpha.txt" "$dir/beta.txt"

# complete_line LINE: COMPREPLY for LINE with the cursor at its end (words
# split on spaces; a trailing space starts an empty word).
complete_line() {
    local line=$1
    read -ra COMP_WORDS <<<"$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$line
    COMP_POINT=${#line}
    COMPREPLY=()
    _leasehold leasehold "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
}

fail() {
    echo "FAIL: '$1': $2 (COMPREPLY: ${COMPREPLY[*]:-<empty>})"
    failures=$((failures + 1))
}

# expect LINE WORD...: every WORD is offered.
expect() {
    local line=$1 w
    shift
    complete_line "$line"
    for w in "$@"; do
        [[ " ${COMPREPLY[*]:-} " == *" $w "* ]] || fail "$line" "$w is not offered"
    done
}

# expect_not LINE WORD...: no WORD is offered.
expect_not() {
    local line=$1 w
    shift
    complete_line "$line"
    for w in "$@"; do
        [[ " ${COMPREPLY[*]:-} " != *" $w "* ]] || fail "$line" "$w is offered"
    done
}

# expect_exactly LINE WORDS: exactly WORDS, in that order.
expect_exactly() {
    complete_line "$1"
    [[ "${COMPREPLY[*]:-}" == "$2" ]] || fail "$1" "expected exactly '$2'"
}

expect_exactly "leasehold " "run status watch resign"
expect_exactly "leasehold ru" "run"
expect_exactly "leasehold res" "resign"
expect "leasehold resign --" --token --wait --wait-timeout --url --key
expect_not "leasehold resign --" --json --lease --metrics-listen
expect "leasehold run --" --metrics-listen
expect_exactly "leasehold resign --token " ""
expect_exactly "leasehold --v" "--version"
expect "leasehold run --" --url --key --region --lease --renew --retry --renew-deadline \
    --command-timeout --connect-timeout --clock-drift-ppm --grace --wait-timeout --restart \
    --exit-on-loss --try-once --hold-after-exit --log-format --log-level --quiet --version
expect_not "leasehold run --" --json
expect "leasehold status --" --json --url --key --region --log-format --quiet --verbose
expect_not "leasehold status --" --lease --try-once --grace --id
expect_exactly "leasehold watch --j" "--json"
expect_exactly "leasehold run --log-format " "text json"
expect_exactly "leasehold watch --log-format j" "json"
expect_exactly "leasehold status --log-level d" "debug"
expect_exactly "leasehold run --url " "redis:// rediss:// unix:// redis+sentinel:// rediss+sentinel://"
expect "leasehold status --tls" --tls-ca-file --tls-ca-dir --tls-cert-file --tls-key-file \
    --tls-server-name --tls-insecure
expect "leasehold run --" --url-file --password-file
expect "leasehold status --password-file $dir/al" "$dir/alpha.txt"
expect "leasehold run --tls-ca-file $dir/be" "$dir/beta.txt"
expect_exactly "leasehold run --tls-server-name " ""
expect "leasehold run --tls-ca-file x.pem --key k ech" echo
expect_exactly "leasehold run --lease " ""
expect_exactly "leasehold run --key " ""
# CMD after `--`, or at the first word that is not an option or a value
expect "leasehold run --lease 2s -- ech" echo
expect "leasehold run --key jobs:x --try-once ech" echo
expect_not "leasehold run --key ech" echo
expect "leasehold run -- cat $dir/al" "$dir/alpha.txt"
expect_not "leasehold run -- cat $dir/al" "$dir/beta.txt"
expect_not "leasehold run --grace 1s -- sh --" --lease --grace
expect_exactly "leasehold status x" ""

if ((failures > 0)); then
    echo "$failures completion check(s) failed"
    exit 1
fi
echo "bash completion: all checks passed"
