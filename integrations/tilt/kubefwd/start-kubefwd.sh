#!/usr/bin/env bash
# Starts `kubefwd svc` with root rights, asking once (a graphical prompt when
# there is a display; no prompt when the privileged helper allows this user),
# and stops it without asking again when Tilt stops this
# resource: `kubefwd stop` goes through kubefwd's control socket, which
# belongs to this user. Signals cannot do that: the user may not signal a
# process that pkexec or osascript started as root.
#
# usage: start-kubefwd.sh KUBEFWD INSTANCE PROMPT [svc flags...]
#   PROMPT: auto, pkexec, osascript, sudo or none
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $0 KUBEFWD INSTANCE PROMPT [kubefwd svc flags...]" >&2
    exit 2
fi
kubefwd=$(command -v "$1") || { echo "kubefwd not found: $1 (install it or pass binary= to kubefwd())" >&2; exit 2; }
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
        # Tilt gives no terminal: an askpass program, if set, asks instead.
        if [[ -n ${SUDO_ASKPASS:-} ]]; then
            cmd=(sudo -A "${cmd[@]}")
        else
            cmd=(sudo "${cmd[@]}")
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

"${cmd[@]}" &
child=$!
stop() {
    "$kubefwd" stop --instance "$instance" >/dev/null 2>&1 || kill -TERM "$child" 2>/dev/null || true
    wait "$child" || true
    exit 0
}
trap stop TERM INT HUP
wait "$child"
