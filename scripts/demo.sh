#!/usr/bin/env bash
# scripts/demo.sh BUILD_DIR: leader election, crash failover and graceful
# handover, live.  Starts a private redis-server on a free loopback port and
# three `server` processes campaigning for one key, kills the leader with
# SIGKILL, then stops its successor with SIGTERM, and times both takeovers.
# Needs only bash, GNU coreutils, redis-server and redis-cli.  Cleans up
# everything it started, and nothing else, on any exit.
set -euo pipefail

build=${1:?usage: scripts/demo.sh BUILD_DIR}
server=$build/server
[ -x "$server" ] || { echo "demo: $server is missing (run make first)" >&2; exit 1; }
for tool in redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is missing (make deps)" >&2; exit 1; }
done

region=demo
key=snaketron:leader:$region
tmp=$(mktemp -d "${TMPDIR:-/tmp}/leasehold-demo.XXXXXX")
declare -A pid=()   # name -> pid of every process started and not yet reaped
redis_port=

cleanup() {
    local name
    for name in "${!pid[@]}"; do
        kill -KILL "${pid[$name]}" 2>/dev/null || true
        { wait "${pid[$name]}"; } 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
heading() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
now_ms() { date +%s%3N; }

# Waits until FILE has a line matching the extended regex PATTERN; fails after
# SECONDS.  Polls, as a demo may: the tests wait on pipes instead.
wait_for_line() { # FILE PATTERN SECONDS
    local file=$1 pattern=$2 deadline=$(($(now_ms) + $3 * 1000))
    until grep -Eq -- "$pattern" "$file" 2>/dev/null; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            echo "demo: no line matching '$pattern' in $file after $3 s" >&2
            return 1
        fi
        sleep 0.02
    done
}

# Starts redis-server on a random free loopback port in $tmp, retrying with
# another port if the one chosen was taken; waits for PING.
start_redis() {
    local attempt port deadline
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        # A random port; if it is taken, redis-server fails to bind and exits
        # and we try another (we never connect to a port we did not open).
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp" --save "" \
            --appendonly no --daemonize no --logfile "$tmp/redis.log" &
        pid[redis]=$!
        deadline=$(($(now_ms) + 5000))
        while [ "$(now_ms)" -lt "$deadline" ] && kill -0 "${pid[redis]}" 2>/dev/null; do
            # Ours answers with its own pid (another server may hold the port).
            if redis-cli -h 127.0.0.1 -p "$port" INFO server 2>/dev/null |
                grep -q "^process_id:${pid[redis]}"$'\r'; then
                redis_port=$port
                return 0
            fi
            sleep 0.02
        done
        kill -KILL "${pid[redis]}" 2>/dev/null || true
        { wait "${pid[redis]}"; } 2>/dev/null || true
        unset 'pid[redis]'
        echo "demo: redis-server did not start on port $port (attempt $attempt), retrying" >&2
    done
    echo "demo: could not start redis-server; its log:" >&2
    cat "$tmp/redis.log" >&2 || true
    return 1
}

rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# Copies stdin to $tmp/NAME.log and to the terminal with a [NAME] prefix.  The
# log stays open, so a line that arrives during the cleanup still has a home.
prefix_lines() { # NAME
    local line
    exec 3>>"$tmp/$1.log"
    while IFS= read -r line; do
        printf '%s\n' "$line" >&3
        printf '[%s] %s\n' "$1" "$line"
    done
}

start_server() { # NAME
    : >"$tmp/$1.log"
    SNAKETRON_REDIS_URL=redis://127.0.0.1:$redis_port SNAKETRON_REGION=$region \
        "$server" --id "$1" --service-interval-ms 1000 2> >(prefix_lines "$1") &
    pid[$1]=$!
}

# The name of the server whose log says it leads, among the names given.
leader_among() { # NAME...
    local name
    for name in "$@"; do
        if grep -q 'This server is now the leader!' "$tmp/$name.log"; then
            echo "$name"
            return 0
        fi
    done
    return 1
}

# Milliseconds from EPOCH_MS to the timestamp of NAME's first leader line.
ms_until_leader_line() { # NAME EPOCH_MS
    local stamp
    stamp=$(grep -m1 'This server is now the leader!' "$tmp/$1.log" | cut -d' ' -f1)
    echo $(($(date -u -d "$stamp" +%s%3N) - $2))
}

# Waits until one of the given servers logs that it leads; prints its name.
wait_for_leader() { # SECONDS NAME...
    local deadline=$(($(now_ms) + $1 * 1000)) found
    shift
    until found=$(leader_among "$@"); do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            echo "demo: none of $* became leader" >&2
            return 1
        fi
        sleep 0.02
    done
    echo "$found"
}

show_holder() {
    printf '   redis-cli GET %s  ->  %s\n' "$key" "$(rcli GET "$key")"
    printf '   redis-cli GET {%s}:epoch  ->  %s\n' "$key" "$(rcli GET "{$key}:epoch")"
}

heading "Starting a private redis-server on 127.0.0.1 (random free port)"
start_redis
echo "   redis-server pid ${pid[redis]} on port $redis_port, data in $tmp"

heading "Starting three servers campaigning for $key"
echo "   (lease 2000 ms, renewed every 300 ms; each logs to stderr, shown here with its name)"
echo "   (the first election waits one lease: this Redis has just started (restart guard),"
echo "    and the key was never used, so its first claim quarantines it (see The safety rule))"
start_server s1
start_server s2
start_server s3
leader=$(wait_for_leader 15 s1 s2 s3)
wait_for_line "$tmp/$leader.log" 'Leader service is running' 5
heading "$leader leads; the key holds its token"
show_holder

heading "Crash: SIGKILL to the leader $leader (no release; the others wait for the lease to lapse)"
followers=()
for name in s1 s2 s3; do [ "$name" = "$leader" ] || followers+=("$name"); done
killed_at=$(now_ms)
# (within one redirection, so bash's own "Killed" notice is not shown)
{ kill -KILL "${pid[$leader]}" && wait "${pid[$leader]}"; } 2>/dev/null || true
unset "pid[$leader]"
successor=$(wait_for_leader 10 "${followers[@]}")
crash_ms=$(ms_until_leader_line "$successor" "$killed_at")
heading "$successor took over ${crash_ms} ms after the crash"
show_holder

remaining=()
for name in "${followers[@]}"; do [ "$name" = "$successor" ] || remaining+=("$name"); done
wait_for_line "$tmp/$successor.log" 'Leader service is running' 5
heading "Graceful stop: SIGTERM to $successor (stops its service, releases the lease)"
stopped_at=$(now_ms)
kill -TERM "${pid[$successor]}"
status=0
wait "${pid[$successor]}" || status=$?
unset "pid[$successor]"
echo "   $successor exited with status $status"
heir=$(wait_for_leader 10 "${remaining[@]}")
handover_ms=$(ms_until_leader_line "$heir" "$stopped_at")
heading "$heir took over ${handover_ms} ms after SIGTERM (no waiting for the TTL)"
show_holder

heading "Summary"
printf '   crash failover (SIGKILL -> successor leads):     %6s ms\n' "$crash_ms"
printf '   graceful handover (SIGTERM -> successor leads):  %6s ms\n' "$handover_ms"
echo "   cleaning up: stopping $heir and redis-server, removing $tmp"
kill -TERM "${pid[$heir]}"
wait "${pid[$heir]}" || true
unset "pid[$heir]"
