# bash completion for leasehold(1)                          -*- shell-script -*-
#
# Installed as share/bash-completion/completions/leasehold.  Completes the
# subcommands, each subcommand's options, the values of --log-format,
# --log-level and the URL's scheme, and after `run`'s options (or `--`) the
# command to run and then its arguments (with bash-completion's
# _command_offset when it is loaded, else command names, then files).

# The options of each subcommand, and those that take a value.
_leasehold_general='--url --url-file --password-file --key --region -q --quiet -v --verbose
    --log-level --log-format --tls-ca-file --tls-ca-dir --tls-cert-file --tls-key-file
    --tls-server-name --tls-insecure --sentinel-user --sentinel-password-file --min-replicas
    -h --help --version'
_leasehold_run='--id --lease --renew --retry --renew-deadline --command-timeout
    --connect-timeout --clock-drift-ppm --grace --wait-timeout --restart --exit-on-loss
    --try-once --hold-after-exit --metrics-listen --priority --handover-interval'
_leasehold_observe='--json'
_leasehold_resign='--token --wait --wait-timeout'
_leasehold_valued=' --url --url-file --password-file --tls-ca-file --tls-ca-dir --tls-cert-file
    --tls-key-file --tls-server-name --sentinel-user --sentinel-password-file --min-replicas
    --key --region --log-level --log-format --id --lease --renew --retry
    --renew-deadline --command-timeout --connect-timeout --clock-drift-ppm --grace
    --wait-timeout --hold-after-exit --metrics-listen --token --priority --handover-interval '

# COMPREPLY from compgen's arguments, one word per line (file names with
# spaces stay whole).
_leasehold_reply() {
    mapfile -t COMPREPLY < <(compgen "$@")
}

# COMPREPLY for COMP_WORDS/COMP_CWORD, as complete -F calls it.
_leasehold() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()

    # The subcommand, and for run where CMD starts: after `--`, or at the
    # first word that is not an option or an option's value.
    local cmd='' cmd_at='' i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ -z $cmd ]]; then
            case $w in
            run | status | watch | resign) cmd=$w ;;
            esac
            continue
        fi
        [[ $cmd == run ]] || continue
        if [[ $w == -- ]]; then
            cmd_at=$((i + 1))
            break
        fi
        if [[ $w != -* ]]; then
            cmd_at=$i
            break
        fi
        if [[ $w != *=* && $_leasehold_valued == *" $w "* ]]; then
            ((i++))
        fi
    done

    if [[ -n $cmd_at ]]; then
        if ((cmd_at == COMP_CWORD)); then
            _leasehold_reply -c -- "$cur"
        elif declare -F _command_offset >/dev/null; then
            _command_offset "$cmd_at"
        else
            _leasehold_reply -f -- "$cur"
        fi
        return 0
    fi

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            _leasehold_reply -W '--help --version' -- "$cur"
        else
            _leasehold_reply -W 'run status watch resign' -- "$cur"
        fi
        return 0
    fi

    case $prev in
    --log-format)
        _leasehold_reply -W 'text json' -- "$cur"
        return 0
        ;;
    --log-level)
        _leasehold_reply -W 'error warn info debug' -- "$cur"
        return 0
        ;;
    --url)
        _leasehold_reply -W 'redis:// rediss:// unix:// redis+sentinel:// rediss+sentinel://' -- "$cur"
        compopt -o nospace 2>/dev/null
        return 0
        ;;
    --url-file | --password-file | --sentinel-password-file | --tls-ca-file | --tls-cert-file | --tls-key-file)
        _leasehold_reply -f -- "$cur"
        return 0
        ;;
    --tls-ca-dir)
        _leasehold_reply -d -- "$cur"
        return 0
        ;;
    --key | --region | --tls-server-name | --id | --lease | --renew | --retry | --renew-deadline | \
        --command-timeout | --connect-timeout | --clock-drift-ppm | --grace | \
        --wait-timeout | --hold-after-exit | --metrics-listen | --token | --priority | \
        --handover-interval)
        return 0 # a value of the user's own: nothing to guess
        ;;
    esac

    if [[ $cmd == run ]]; then
        if [[ $cur == -* ]]; then
            _leasehold_reply -W "$_leasehold_general $_leasehold_run --" -- "$cur"
        else
            _leasehold_reply -c -- "$cur" # CMD starts here
        fi
    elif [[ $cur == -* && $cmd == resign ]]; then
        _leasehold_reply -W "$_leasehold_general $_leasehold_resign" -- "$cur"
    elif [[ $cur == -* ]]; then
        _leasehold_reply -W "$_leasehold_general $_leasehold_observe" -- "$cur"
    fi
    return 0
}
complete -F _leasehold leasehold
