# Process helpers shared by the system tests (sourced; bash). The caller keeps
# the PIDs array of what it started.

# alive PID: the process runs (a zombie, dead but not yet reaped, does not count).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

forget_pid() {
    local gone=$1 keep=() pid
    for pid in "${PIDS[@]}"; do [ "$pid" = "$gone" ] || keep+=("$pid"); done
    PIDS=("${keep[@]}")
}

not() { ! "$@"; }

# wait_until SECONDS CMD...: polls CMD every 0.1 s; fails after SECONDS.
wait_until() {
    local deadline=$(( $(date +%s%N) + ${1%.*} * 1000000000 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# stop_process PID SIGNAL [SECONDS]: sends SIGNAL, waits (15 s by default, then
# SIGKILL) and sets rc to the exit status (128 + N for a signal).
stop_process() {
    local pid=$1 sig=$2 patience=${3:-15}
    kill "-$sig" "$pid" 2>/dev/null || true
    if ! wait_until "$patience" not alive "$pid"; then
        echo "# process $pid ignored SIG$sig for $patience s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    forget_pid "$pid"
}
