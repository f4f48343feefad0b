#!/usr/bin/env bash
# Installs the Debian packages the integration tests rely on. Idempotent and
# quick when everything is present (no apt-get update then). Starts no daemon:
# the tests start their own dockerd and registry and stop them again.
set -euo pipefail

PACKAGES=(docker.io busybox-static qemu-user-static binfmt-support docker-registry iptables python3-venv)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

need_update=0

# The arm64 busybox-static .deb is fetched with `apt-get download
# busybox-static:arm64`, which only works once apt knows the arm64 indexes.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    "${SUDO[@]}" dpkg --add-architecture arm64
    need_update=1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)" != "installed" ]; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    need_update=1
fi

if [ "$need_update" -eq 1 ]; then
    "${SUDO[@]}" apt-get update -q
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup-deps: installing ${missing[*]}"
    # docker.io, containerd and docker-registry start their services from the
    # maintainer scripts; a policy-rc.d answering 101 ("action forbidden")
    # keeps them stopped. Only ours is removed afterwards.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 0755 "$policy"
        own_policy=1
    fi
    cleanup() {
        if [ "$own_policy" -eq 1 ]; then
            "${SUDO[@]}" rm -f "$policy"
        fi
    }
    trap cleanup EXIT
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

echo "setup-deps: all test dependencies present"
