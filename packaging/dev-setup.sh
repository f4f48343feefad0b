#!/usr/bin/env bash
# Prepares this machine for the quickstart (and, with --tests, for the test suite):
# installs the missing Debian packages and the project into ./.venv.
# Idempotent and quick when everything is present (no apt-get update then).
# Starts no daemon: the quickstart and the tests start their own and say so.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
with_tests=0
[ "${1:-}" = "--tests" ] && with_tests=1

PACKAGES=(docker.io busybox-static iptables python3-venv)
if [ "$with_tests" -eq 1 ]; then
    PACKAGES+=(qemu-user-static binfmt-support docker-registry cloud-init rpm lintian rpmlint debootstrap)
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "dev-setup: run as root (apt-get and dockerd need it)" >&2; exit 2; }
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

need_update=0
# The tests build an arm64 image from busybox-static:arm64, which apt only finds
# once it knows the arm64 indexes.
if [ "$with_tests" -eq 1 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    "${SUDO[@]}" dpkg --add-architecture arm64
    need_update=1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != "installed" ]; then
        missing+=("$pkg")
    fi
done
[ "${#missing[@]}" -gt 0 ] && need_update=1
[ "$need_update" -eq 1 ] && "${SUDO[@]}" apt-get update -q

if [ "${#missing[@]}" -gt 0 ]; then
    echo "dev-setup: installing ${missing[*]}"
    # docker.io, containerd and docker-registry start their services from the maintainer
    # scripts; a policy-rc.d answering 101 ("action forbidden") keeps them stopped, so
    # nothing runs that the quickstart or the tests did not start. Only ours is removed.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 0755 "$policy"
        own_policy=1
    fi
    cleanup() { if [ "$own_policy" -eq 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi; }
    trap cleanup EXIT
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The project and its Python dependencies, in a virtualenv of its own. Reinstalled only
# when pyproject.toml changed since the last install.
venv="$root/.venv"
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
stamp="$venv/.dstack-installed"
want=$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "dev-setup: installing the project into $venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e "$root[dev]"
    echo "$want" >"$stamp"
fi
echo "dev-setup: ready"
