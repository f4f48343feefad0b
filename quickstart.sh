#!/usr/bin/env bash
# Sets everything up on this machine and runs the main job: a controller (SQLite in
# .quickstart/controller), an agent registered with a one-time join token, and an example
# task whose output streams back. `./quickstart.sh --stop` stops what it started.
set -euo pipefail
root=$(cd "$(dirname "$0")" && pwd)
cd "$root"
qs="$root/.quickstart"
listen="${DSTACK_QUICKSTART_LISTEN:-127.0.0.1:7443}"
mkdir -p "$qs"

stop_started() {
    # Only processes this script started, by the pids it wrote down.
    for name in agent controller dockerd; do
        pidfile="$qs/$name.pid"
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            echo "quickstart: stopping $name (pid $pid)"
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
        rm -f "$pidfile"
    done
}

if [ "${1:-}" = "--stop" ]; then
    stop_started
    echo "quickstart: stopped. Task containers the agent left are labelled dev.dstack-hybrid.managed."
    exit 0
fi

bash packaging/dev-setup.sh
stop_started  # a second run starts afresh instead of fighting over the port
rm -rf "$qs/controller" "$qs/agent"  # and with a new controller, CA and host: a demo, not a deployment

# A Docker engine: the one that answers, else the system service, else a dockerd of our own.
if ! docker info >/dev/null 2>&1; then
    if [ -d /run/systemd/system ] && systemctl start docker 2>/dev/null && docker info >/dev/null 2>&1; then
        echo "quickstart: started the docker service"
    else
        echo "quickstart: starting dockerd (log: $qs/dockerd.log)"
        dockerd >"$qs/dockerd.log" 2>&1 &
        echo $! >"$qs/dockerd.pid"
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || { echo "quickstart: dockerd did not start, see $qs/dockerd.log" >&2; exit 1; }
    fi
fi

# An example image for this host's own arch, built offline from Debian's busybox-static.
arch=$(dpkg --print-architecture)
image=dstack-example/busybox:1
if [ "$(docker image inspect -f '{{.Architecture}}' "$image" 2>/dev/null || true)" != "$arch" ]; then
    python3 packaging/busybox_image.py --arch "$arch" --tag "$image"
fi

# The controller. Registry lookups are off: the example image is local only.
echo "quickstart: starting dstack-controller on $listen (log: $qs/controller.log)"
.venv/bin/dstack-controller serve --data-dir "$qs/controller" --listen "$listen" --image-lookup off \
    >"$qs/controller.log" 2>&1 &
echo $! >"$qs/controller.pid"
for _ in $(seq 50); do [ -s "$qs/controller/admin-token" ] && break; sleep 0.2; done
export DSTACK_CONTROLLER="$listen"
DSTACK_TOKEN=$(cat "$qs/controller/admin-token")
export DSTACK_TOKEN
export DSTACK_CA_FILE="$qs/controller/pki/ca.crt"  # the controller's own CA, made on its first start

# The agent, registering once with a fresh single-use join token. The token pins the controller's
# CA, so the agent checks the controller's certificate before it sends the token.
token=$(.venv/bin/dstack-controller token create --data-dir "$qs/controller" --ttl 10m)
echo "quickstart: starting dstack-agent (log: $qs/agent.log)"
.venv/bin/dstack-agent run --controller "$listen" --join-token "$token" --state-dir "$qs/agent" \
    >"$qs/agent.log" 2>&1 &
echo $! >"$qs/agent.pid"
for _ in $(seq 100); do
    .venv/bin/dstackctl hosts --json 2>/dev/null | grep -q '"status": "online"' && break
    sleep 0.3
done
.venv/bin/dstackctl hosts

echo "quickstart: submitting packaging/examples/hello.yaml"
status=0
.venv/bin/dstackctl submit -f packaging/examples/hello.yaml --name "hello-$(date +%H%M%S)" || status=$?
.venv/bin/dstackctl ps -a

cat <<MSG

quickstart: running now (pids in $qs/*.pid):
  dstack-controller  pid $(cat "$qs/controller.pid"), data in $qs/controller
  dstack-agent       pid $(cat "$qs/agent.pid"), state in $qs/agent$( [ -f "$qs/dockerd.pid" ] && printf '\n  dockerd            pid %s' "$(cat "$qs/dockerd.pid")")
Try it yourself:
  export DSTACK_CONTROLLER=$listen DSTACK_TOKEN=\$(cat $qs/controller/admin-token) DSTACK_CA_FILE=$qs/controller/pki/ca.crt
  .venv/bin/dstackctl submit -f packaging/examples/hello.yaml --name again
Stop everything it started:  ./quickstart.sh --stop
MSG
exit "$status"
