# Sourced by benches/ejabberd/start and stop: the instance in $DIR.
# shellcheck shell=bash

# ejabberdctl with this instance's files, bounded by CTL_TIMEOUT [60] s;
# our own --ctl-config keeps /etc/default/ejabberd (the system instance's
# settings) out.
ctl() {
    (cd "$DIR" && timeout "${CTL_TIMEOUT:-60}" /usr/sbin/ejabberdctl \
        --ctl-config "$DIR/ejabberdctl.cfg" --config-dir "$DIR" \
        --config "$DIR/ejabberd.yml" --spool "$DIR/spool" --logs "$DIR/logs" "$@")
}

# True if PID is a live process (a zombie left unreaped by a reaper-less
# PID 1 in a container does not count).
alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

# The beam pid written by ejabberd itself (EJABBERD_PID_PATH), if alive.
beam_pid() {
    local pid
    [ -f "$DIR/ejabberd.pid" ] || return 1
    pid=$(cat "$DIR/ejabberd.pid")
    [ -n "$pid" ] && alive "$pid" && echo "$pid"
}

log_tail() {
    local f
    for f in "$DIR"/logs/ejabberd.log "$DIR"/logs/error.log "$DIR"/logs/crash.log; do
        [ -s "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
    done
    return 0
}
