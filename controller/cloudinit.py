"""The cloud-init user-data that installs, configures and starts dstack-agent on a fresh VM.

The template lives here, in TEMPLATE, and nowhere else that code reads: an installed wheel has no
packaging/ folder, and a string in a module needs no package-data settings to travel with it.
packaging/cloud-init/user-data.yaml.tmpl is a byte-for-byte copy for operators who render it by
hand; tests/unit/test_cloudinit.py fails when the two differ (and says how to regenerate the copy).

Substitution: each `{{ name }}` is replaced by a YAML double-quoted scalar (or a flow mapping of
them for labels). The quoting escapes every character that is not printable ASCII, so a value can
hold quotes, colons, `#`, newlines or anything else and stays one scalar: it can neither end the
string nor add keys, lines or shell commands. Values reach the install script as arguments
(`sh -c SCRIPT NAME ARG...`), never as part of the script's text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

TEMPLATE = """\
#cloud-config
# dstack-agent on a fresh VM: write /etc/dstack/agent.d/50-cloud-init.yaml, install the package,
# start the service.
#
# Rendered by `dstack-controller cloud-init --fleet NAME`, which also creates the single-use join
# token. To fill it in by hand, replace every placeholder in double braces with a YAML
# double-quoted string such as "10.0.0.5:7443" (JSON string syntax works), or with null where
# there is nothing to say; labels take a flow mapping such as {"rack": "r12"} or {}.
# In package_url, {arch} (single braces) is replaced on the VM by its package architecture:
# amd64/arm64 (dpkg --print-architecture) for a .deb, x86_64/aarch64 (uname -m) for an .rpm, so
# one user-data serves a mixed fleet: "https://example.com/dstack-agent_0.1.0-1_{arch}.deb".
#
# The join token is in the user-data, which the instance metadata service serves to anything on
# the VM that asks: it is single-use and short-lived, and the host keeps its own credential once
# it has registered, so a copy read later is worthless.

write_files:
  # A drop-in, not /etc/dstack/agent.yaml: that file belongs to the package (a conffile), and
  # dpkg stops at its conffile prompt, failing the install, when the file exists before the
  # package is installed. The agent reads agent.yaml, then agent.d/*.yaml in lexical order.
  # Written 0600 root:root. cloud-init writes files before runcmd, when the package (and with it
  # the dstack-agent group) does not exist yet, and a write with an unknown owner fails. The
  # install step below makes it root:dstack-agent 0640 once the group exists.
  - path: /etc/dstack/agent.d/50-cloud-init.yaml
    owner: root:root
    permissions: '0600'
    content: |
      # Written by cloud-init from the dstack-controller cloud-init template.
      controller: {{ controller }}
      join_token: {{ join_token }}
      fleet: {{ fleet }}
      region: {{ region }}
      zone: {{ zone }}
      labels: {{ labels }}

runcmd:
  # Install: the package already in the image at package_path (a shell pattern such as
  # /opt/dstack/dstack-agent_*.deb is allowed; the last match wins), else the one at package_url,
  # else none (the image has dstack-agent installed already). apt-get on Debian and Ubuntu,
  # dnf or yum on rpm-based images. $1 is package_url, $2 is package_path. {arch} in the URL
  # becomes this VM's package architecture. stdin is closed, as cloud-init runs runcmd.
  - - sh
    - -c
    - |
      set -eu
      url=$1
      pattern=$2
      if command -v apt-get >/dev/null 2>&1; then ext=deb
      elif command -v dnf >/dev/null 2>&1 || command -v yum >/dev/null 2>&1; then ext=rpm
      else echo "dstack-agent install: neither apt-get nor dnf/yum found" >&2; exit 1
      fi
      pkg=
      if [ -n "$pattern" ]; then
        old_ifs=$IFS; IFS=
        for f in $pattern; do if [ -f "$f" ]; then pkg=$f; fi; done
        IFS=$old_ifs
        [ -n "$pkg" ] || { echo "dstack-agent install: no package at $pattern" >&2; exit 1; }
      elif [ -n "$url" ]; then
        case "$url" in *"{arch}"*)
          if [ "$ext" = deb ]; then arch=$(dpkg --print-architecture); else arch=$(uname -m); fi
          url=$(printf '%s' "$url" | sed "s/{arch}/$arch/g") ;;
        esac
        pkg=$(mktemp -d)/dstack-agent.$ext
        if command -v curl >/dev/null 2>&1; then
          curl -fsSL --globoff --retry 5 --retry-delay 2 -o "$pkg" "$url"
        else
          wget -q --tries=5 -O "$pkg" "$url"
        fi
      fi
      if [ -n "$pkg" ]; then
        case "$pkg" in /*) ;; *) pkg=./$pkg ;; esac
        if [ "$ext" = deb ]; then
          export DEBIAN_FRONTEND=noninteractive
          apt-get -o DPkg::Lock::Timeout=300 update -q
          apt-get -o DPkg::Lock::Timeout=300 install -y -q "$pkg"
        elif command -v dnf >/dev/null 2>&1; then
          dnf install -y "$pkg"
        else
          yum install -y "$pkg"
        fi
      fi
      if getent group dstack-agent >/dev/null 2>&1; then
        chown root:dstack-agent /etc/dstack/agent.d/50-cloud-init.yaml
        chmod 0640 /etc/dstack/agent.d/50-cloud-init.yaml
      fi
    - dstack-agent-install
    - {{ package_url }}
    - {{ package_path }}
  - [systemctl, daemon-reload]
  - [systemctl, enable, --now, dstack-agent]
"""

PLACEHOLDER = re.compile(r"\{\{ *([a-z_]+) *\}\}")
EXTRA_KEYS = ("region", "zone", "labels")


def yaml_quote(value: str) -> str:
    """A YAML double-quoted scalar holding exactly `value`, printable ASCII only (YAML 1.1 and 1.2).

    Like json.dumps, but characters outside the Basic Multilingual Plane become one \\U escape
    rather than a surrogate pair, which YAML parsers would read as two broken characters."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _scalar(value: str | None) -> str:
    return yaml_quote(value) if value else "null"


def check_inputs(
    controller: str,
    fleet: str,
    package_url: str = "",
    package_path: str = "",
    extra: Mapping[str, object] | None = None,
) -> None:
    """Raises ValueError (one sentence) for inputs render_user_data would refuse, token aside."""
    if not controller:
        raise ValueError("the controller address is empty")
    if not fleet:
        raise ValueError("the fleet is empty")
    if package_url and package_path:
        raise ValueError("give a package URL or a package path, not both")
    if package_url and not re.match(r"(?i)https?://[^/\s]", package_url):
        raise ValueError(f"package URL {package_url!r} is not an http(s) URL")
    for placeholder in re.findall(r"\{[^{}]*\}", package_url):
        if placeholder != "{arch}":
            raise ValueError(f"package URL {package_url!r} has {placeholder}; the only placeholder is {{arch}}")
    if package_path and not Path(package_path).is_absolute():
        raise ValueError(f"package path {package_path!r} is not absolute")
    for key, value in (extra or {}).items():
        if key not in EXTRA_KEYS:
            raise ValueError(f"unknown agent setting {key!r} (expected one of {', '.join(EXTRA_KEYS)})")
        if key == "labels":
            if not isinstance(value, Mapping) or not all(
                isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
            ):
                raise ValueError("labels must map names to string values")
        elif value is not None and not isinstance(value, str):
            raise ValueError(f"{key} must be a string")


def render_user_data(
    controller: str,
    join_token: str,
    fleet: str,
    package_url: str = "",
    package_path: str = "",
    extra: dict[str, object] | None = None,
) -> str:
    """The user-data (a #cloud-config document) for one VM. extra: region, zone, labels."""
    check_inputs(controller, fleet, package_url, package_path, extra)
    if not join_token:
        raise ValueError("the join token is empty")
    extra = extra or {}
    labels = extra.get("labels") or {}
    assert isinstance(labels, Mapping)  # check_inputs made sure
    region, zone = extra.get("region"), extra.get("zone")
    values = {
        "controller": yaml_quote(controller),
        "join_token": yaml_quote(join_token),
        "fleet": yaml_quote(fleet),
        "region": _scalar(region if isinstance(region, str) else None),
        "zone": _scalar(zone if isinstance(zone, str) else None),
        "labels": "{" + ", ".join(f"{yaml_quote(k)}: {yaml_quote(v)}" for k, v in labels.items()) + "}",
        "package_url": yaml_quote(package_url),
        "package_path": yaml_quote(package_path),
    }

    def replace(match: re.Match[str]) -> str:
        return values[match.group(1)]  # a KeyError here is a bug in TEMPLATE, not bad input

    return PLACEHOLDER.sub(replace, TEMPLATE)
