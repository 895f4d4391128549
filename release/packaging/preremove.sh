#!/bin/sh
# kubefwd package, before removal: stop and disable the packaged helper if
# systemd runs it, before its binary goes. A helper that stops removes
# every client's hosts block.
#
# $1 is dpkg's action (remove, upgrade, deconfigure, failed-upgrade), rpm's
# count of versions left after this (0 on erase, 1 or more on upgrade), or
# apk's old version (its pre-deinstall runs on removal only).
case "$1" in
upgrade | failed-upgrade) exit 0 ;;
"" | *[!0-9]*) ;; # not a count: dpkg's remove or deconfigure, or apk
0) ;;
*) exit 0 ;; # rpm: an upgrade
esac
[ -d /run/systemd/system ] || exit 0
command -v systemctl >/dev/null 2>&1 || exit 0
unit=kubefwd-helper.service
# Only the package's unit: a helper installed with `kubefwd helper install`
# (/etc/systemd/system) runs its own copy of kubefwd and is removed with
# `kubefwd helper uninstall`.
case "$(systemctl show --property=FragmentPath --value "$unit" 2>/dev/null)" in
*/lib/systemd/system/"$unit") systemctl disable --now "$unit" || true ;;
esac
exit 0
