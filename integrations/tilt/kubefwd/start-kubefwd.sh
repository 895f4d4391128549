#!/usr/bin/env bash
# Starts `kubefwd svc` with root rights, asking once (a graphical prompt when
# there is a display; no prompt when the privileged helper allows this user),
# and stops it without asking again when Tilt stops this resource, or when
# Tilt itself is gone (killed with SIGKILL, it cannot stop anything):
# `kubefwd stop` goes through kubefwd's control socket, which belongs to this
# user. Signals cannot do that: the user may not signal a process that pkexec
# or osascript started as root.
#
# usage: start-kubefwd.sh KUBEFWD INSTANCE PROMPT [svc flags...]
#   PROMPT: auto, pkexec, osascript, sudo or none
#
# Written for bash 3.2 as well (macOS's /bin/bash).
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 KUBEFWD INSTANCE PROMPT [kubefwd svc flags...]" >&2
    exit 2
fi
kubefwd=$(command -v -- "$1") || { echo "kubefwd not found: $1 (install it or pass binary= to kubefwd())" >&2; exit 2; }
# pkexec and osascript start kubefwd in another directory: the path must
# not depend on this one.
if [[ $kubefwd != /* ]]; then
    kubefwd="$(cd "$(dirname "$kubefwd")" && pwd)/$(basename "$kubefwd")"
fi
instance=$2
prompt=$3
shift 3

if [[ $prompt == auto ]]; then
    # Root already, or the privileged helper (kubefwd helper install)
    # allows this user: kubefwd runs as it is, with no prompt at all.
    if [[ $(id -u) == 0 ]] || "$kubefwd" helper status >/dev/null 2>&1; then
        prompt=none
    elif [[ $(uname -s) == Darwin ]]; then
        prompt=osascript
    elif [[ -n ${DISPLAY:-}${WAYLAND_DISPLAY:-} ]] && command -v pkexec >/dev/null; then
        prompt=pkexec
    else
        prompt=sudo
    fi
fi

# kubefwd learns who it works for from SUDO_*: its control socket, address
# state and kubeconfig are that user's. pkexec and osascript clear the
# environment, so it is passed explicitly, the same way for every prompt.
who=(SUDO_UID="$(id -u)" SUDO_GID="$(id -g)" SUDO_USER="$(id -un)")
if [[ -n ${KUBECONFIG:-} ]]; then
    who+=(KUBECONFIG="$KUBECONFIG")
fi
cmd=(/usr/bin/env "${who[@]}" "$kubefwd" svc --instance "$instance" "$@")

case $prompt in
    none) cmd=("$kubefwd" svc --instance "$instance" "$@") ;;
    pkexec) cmd=(pkexec "${cmd[@]}") ;;
    sudo)
        # Tilt gives no terminal: an askpass program, if set, asks instead;
        # without one, sudo must fail at once rather than wait for a
        # password nobody can type. (C locale: its message is matched below.)
        if [[ -n ${SUDO_ASKPASS:-} ]]; then
            cmd=(env LC_ALL=C sudo -A "${cmd[@]}")
        else
            cmd=(env LC_ALL=C sudo -n "${cmd[@]}")
        fi
        ;;
    osascript)
        quoted=$(printf '%q ' "${cmd[@]}")
        quoted=${quoted//\\/\\\\}
        quoted=${quoted//\"/\\\"}
        cmd=(osascript -e "do shell script \"$quoted\" with administrator privileges")
        ;;
    *)
        echo "unknown prompt $prompt (want auto, pkexec, osascript, sudo or none)" >&2
        exit 2
        ;;
esac

# relay copies kubefwd's output to Tilt. It outlives Tilt: were kubefwd
# writing to Tilt's pipe itself, its first log line after Tilt is gone would
# kill it (SIGPIPE) before it removes its hosts entries. When sudo's first
# line says it needed a password, it also says how to need none.
relay() {
    local line
    trap '' TERM INT HUP
    if [[ $prompt == sudo ]] && IFS= read -r line; then
        printf '%s\n' "$line" >&2 || true
        case $line in
            *"password is required"* | *"terminal is required"* | *"no tty present"*)
                echo "kubefwd: sudo needs a password and Tilt has no terminal to type it in: run 'sudo kubefwd helper install' once, or set SUDO_ASKPASS to a graphical askpass program (such as ssh-askpass) before 'tilt up'." >&2 || true
                ;;
        esac
    fi
    cat >&2 || cat >/dev/null
}

# watch_parent stops kubefwd (through the trap below) when the process that
# started this script, Tilt, is gone: this script then has another parent.
watch_parent() {
    local stat ppid
    while sleep 1; do
        kill -0 $$ 2>/dev/null || return 0
        if [[ -r /proc/$$/stat ]]; then
            read -r stat </proc/$$/stat || return 0
            stat=${stat##*) } # after the command name, which may hold spaces
            ppid=${stat#* }
            ppid=${ppid%% *}
        else
            ppid=$(ps -o ppid= -p $$) || return 0
            ppid=${ppid//[[:space:]]/}
        fi
        if [[ $ppid != "$parent" ]]; then
            kill -TERM $$ 2>/dev/null || true
            return 0
        fi
    done
}

# Without Tilt to read them, writes to its pipe fail instead of killing
# this script (and, inherited, the relay).
trap '' PIPE

parent=$PPID
watcher=
# shellcheck disable=SC2317 # run by the trap below
stop() {
    trap '' TERM INT HUP
    if [[ -n $watcher ]]; then kill "$watcher" 2>/dev/null || true; fi
    # kubefwd may still be starting, or waiting for its password: ask again
    # until it stops or is gone.
    until "$kubefwd" stop --instance "$instance" >/dev/null 2>&1 || kill -TERM "$child" 2>/dev/null; do
        ps -p "$child" >/dev/null 2>&1 || break
        sleep 1
    done
    wait "$child" || true
    wait "$relayed" || true
    exit 0
}

# A fifo rather than a pipe or process substitution: $! stays kubefwd (or
# the sudo in front of it, which passes signals on), and bash 3.2 cannot
# wait for a process substitution.
fifodir=$(mktemp -d "${TMPDIR:-/tmp}/kubefwd-tilt.XXXXXX")
mkfifo "$fifodir/out"
relay <"$fifodir/out" &
relayed=$!
exec 4>"$fifodir/out"
rm -rf "$fifodir"
"${cmd[@]}" >&4 2>&4 &
child=$!
trap stop TERM INT HUP
exec 4>&-

if [[ $parent -gt 1 ]]; then
    watch_parent </dev/null >/dev/null 2>&1 &
    watcher=$!
fi

status=0
wait "$child" || status=$?
if [[ -n $watcher ]]; then kill "$watcher" 2>/dev/null || true; fi
wait "$relayed" || true
exit "$status"
