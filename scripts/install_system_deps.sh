#!/usr/bin/env bash
# Install the Debian packages the test suite needs, only when they are missing.
#
#   prometheus  -> provides `promtool` (tests run `promtool check metrics` on our textfile)
#   tmux        -> the cockpit acceptance tests drive the real TUI inside tmux
#   systemd     -> provides `systemd-analyze` (tests run `systemd-analyze verify` on the rendered
#                  service units); installing the package does not make systemd PID 1
#
# Idempotent: when every command is already present it does nothing (no apt-get update, no sudo).
# Uses sudo only when not root. The prometheus package ships a service; its postinst would start
# it, which we do not want on a dev box or CI runner (and which fails in containers), so during the
# install a temporary /usr/sbin/policy-rc.d denies service starts (invoke-rc.d and
# deb-systemd-invoke both honour it). An existing policy-rc.d is left untouched.
set -euo pipefail

# command -> Debian package providing it
declare -A PKG_FOR_CMD=(
    [promtool]=prometheus
    [tmux]=tmux
    [systemd-analyze]=systemd
)

missing=()
for cmd in "${!PKG_FOR_CMD[@]}"; do
    if command -v "$cmd" >/dev/null 2>&1; then
        echo "ok: $cmd already present ($(command -v "$cmd"))"
    else
        missing+=("${PKG_FOR_CMD[$cmd]}")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "nothing to install"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
else
    if ! command -v sudo >/dev/null 2>&1; then
        echo "error: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    SUDO=(sudo)
fi

POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$POLICY"
        echo "removed temporary $POLICY"
    fi
}
trap cleanup EXIT

if [ ! -e "$POLICY" ]; then
    # 101 = "action forbidden by policy": the package installs, its service is not started.
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 0755 "$POLICY"
    created_policy=1
    echo "installed temporary $POLICY (deny service starts during install)"
fi

echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# RUNLEVEL=1 is a second guard for old sysvinit scripts that ignore policy-rc.d.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
    apt-get install -y -q --no-install-recommends "${missing[@]}"

for cmd in "${!PKG_FOR_CMD[@]}"; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "error: $cmd still missing after install" >&2
        exit 1
    fi
done
echo "installed: ${missing[*]}"
promtool --version 2>&1 | head -n 1
