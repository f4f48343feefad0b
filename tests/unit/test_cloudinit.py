"""Rendering of the cloud-init user-data and `dstack-controller cloud-init`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from dstack_hybrid.shared.tokens import parse_token
from ruamel.yaml import YAML

from agent.config import load_config
from controller.cloudinit import TEMPLATE, render_user_data, yaml_quote
from controller.main import main
from controller.settings import default_database_url
from controller.store import open_store
from tests.support.cluster import served_data_dir

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "dstack1." + "ab" * 32 + ".0123abcd.s3cret"
NASTY = "a\"b: c # d\n- e: [f]\\ {g} 'h' \t\x00 é 😀 ${x} $(id) `id`"


def _parse(text: str) -> Any:
    return YAML(typ="safe").load(text)


DROP_IN = "/etc/dstack/agent.d/50-cloud-init.yaml"


def _agent_file(doc: Any) -> dict[str, Any]:
    [entry] = [f for f in doc["write_files"] if f["path"] == DROP_IN]
    return dict(entry)


def test_user_data_never_writes_the_packages_conffile() -> None:
    """/etc/dstack/agent.yaml is a conffile: written before the install, dpkg stops at its prompt."""
    doc = _parse(render_user_data("c:1", TOKEN, "f", package_url="https://x/a.deb"))
    assert [f["path"] for f in doc["write_files"]] == [DROP_IN]
    assert "/etc/dstack/agent.yaml" not in doc["runcmd"][0][2]
    assert f"chown root:dstack-agent {DROP_IN}" in doc["runcmd"][0][2]


def test_packaging_copy_matches_the_template() -> None:
    copy = ROOT / "packaging" / "cloud-init" / "user-data.yaml.tmpl"
    assert copy.read_text() == TEMPLATE, (
        "packaging/cloud-init/user-data.yaml.tmpl differs from controller.cloudinit.TEMPLATE; regenerate it with "
        ".venv/bin/python -c 'from controller.cloudinit import TEMPLATE; "
        'open("packaging/cloud-init/user-data.yaml.tmpl", "w").write(TEMPLATE)\''
    )


def test_render_writes_the_drop_in_and_starts_the_service(tmp_path: Path) -> None:
    text = render_user_data(
        "ctl.example.com:7443",
        TOKEN,
        "gpu",
        package_url="https://example.com/dstack-agent_0.1.0_amd64.deb",
        extra={"region": "eu-west-1", "zone": "eu-west-1a", "labels": {"rack": "r12"}},
    )
    assert text.startswith("#cloud-config\n")
    doc = _parse(text)
    entry = _agent_file(doc)
    assert entry["owner"] == "root:root"
    assert entry["permissions"] == "0600"
    assert entry["content"] == (
        "# Written by cloud-init from the dstack-controller cloud-init template.\n"
        'controller: "ctl.example.com:7443"\n'
        f'join_token: "{TOKEN}"\n'
        'fleet: "gpu"\n'
        'region: "eu-west-1"\n'
        'zone: "eu-west-1a"\n'
        'labels: {"rack": "r12"}\n'
    )
    install = doc["runcmd"][0]
    assert install[:2] == ["sh", "-c"]
    assert install[3:] == ["dstack-agent-install", "https://example.com/dstack-agent_0.1.0_amd64.deb", ""]
    assert ["systemctl", "enable", "--now", "dstack-agent"] in doc["runcmd"]

    # As the agent reads it: the package's agent.yaml (all comments), then the drop-in.
    conf = tmp_path / "agent.yaml"
    conf.write_text((ROOT / "packaging" / "config" / "agent.yaml").read_text())
    (tmp_path / "agent.d").mkdir()
    (tmp_path / "agent.d" / "50-cloud-init.yaml").write_text(entry["content"])
    cfg = load_config(conf)
    assert (cfg.controller, cfg.join_token, cfg.fleet) == ("ctl.example.com:7443", TOKEN, "gpu")
    assert (cfg.region, cfg.zone, cfg.labels) == ("eu-west-1", "eu-west-1a", {"rack": "r12"})


def test_optional_values_left_out_are_null(tmp_path: Path) -> None:
    entry = _agent_file(_parse(render_user_data("10.0.0.5:7443", TOKEN, "default")))
    conf = tmp_path / "agent.yaml"
    conf.write_text(entry["content"])
    cfg = load_config(conf)
    assert (cfg.region, cfg.zone, cfg.labels) == (None, None, {})


@pytest.mark.parametrize("field", ["controller", "fleet", "region", "zone", "label_key", "label_value", "package"])
def test_hostile_values_stay_data(field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DSTACK_CONTROLLER", raising=False)
    monkeypatch.delenv("DSTACK_JOIN_TOKEN", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    args: dict[str, Any] = {"controller": "c:1", "join_token": TOKEN, "fleet": "f"}
    extra: dict[str, Any] = {"region": "r", "zone": "z", "labels": {"k": "v"}}
    if field in ("controller", "fleet"):
        args[field] = NASTY
    elif field in ("region", "zone"):
        extra[field] = NASTY
    elif field == "label_key":
        extra["labels"] = {NASTY: "v"}
    elif field == "label_value":
        extra["labels"] = {"k": NASTY}
    package_path = "/opt/" + NASTY if field == "package" else ""
    text = render_user_data(**args, package_path=package_path, extra=extra)
    assert text.isascii()
    doc = _parse(text)
    assert set(doc) == {"write_files", "runcmd"}
    assert len(doc["write_files"]) == 1
    assert len(doc["runcmd"]) == 3
    assert doc["runcmd"][0][3:] == ["dstack-agent-install", "", package_path]
    content = _agent_file(doc)["content"]
    assert content.count("\n") == 7  # the comment and six settings, nothing added
    conf = tmp_path / "agent.yaml"
    conf.write_text(content)
    assert _parse(content) == {
        "controller": args["controller"],
        "join_token": TOKEN,
        "fleet": args["fleet"],
        **extra,
    }
    cfg = load_config(conf)
    assert (cfg.controller, cfg.fleet, cfg.region, cfg.zone, cfg.labels) == (
        args["controller"],
        args["fleet"],
        extra["region"],
        extra["zone"],
        extra["labels"],
    )


def test_yaml_quote_round_trips_every_kind_of_character() -> None:
    value = "".join(chr(c) for c in [*range(0, 0x300), 0x85, 0x2028, 0x2029, 0xFEFF, 0x1F600, 0x10FFFF])
    quoted = yaml_quote(value)
    assert quoted.isascii() and "\n" not in quoted
    assert _parse(f"k: {quoted}\n") == {"k": value}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"controller": ""}, "controller address is empty"),
        ({"fleet": ""}, "fleet is empty"),
        ({"join_token": ""}, "join token is empty"),
        ({"package_url": "https://x/a.deb", "package_path": "/a.deb"}, "not both"),
        ({"package_url": "file:///a.deb"}, "not an http(s) URL"),
        ({"package_url": "https://x/a_{ARCH}.deb"}, "has {ARCH}; the only placeholder is {arch}"),
        ({"package_url": "https://x/{version}/a_{arch}.deb"}, "has {version}; the only placeholder is {arch}"),
        ({"package_path": "a.deb"}, "not absolute"),
        ({"extra": {"arch": "amd64"}}, "unknown agent setting"),
        ({"extra": {"labels": {"a": 1}}}, "labels must map"),
        ({"extra": {"region": 5}}, "region must be a string"),
    ],
)
def test_render_refuses_bad_input(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"controller": "c:1", "join_token": TOKEN, "fleet": "f", **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        render_user_data(**args)


def _install_script(text: str) -> list[str]:
    return list(_parse(text)["runcmd"][0])


# What the fake commands print: an arm64 VM, so the test cannot pass on this amd64 host by chance.
FAKE_OUTPUT = {"dpkg": "arm64", "uname": "aarch64"}


def _fake_bin(tmp_path: Path, names: list[str]) -> Path:
    """Commands that log their arguments (and, for curl, write the file named after -o)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    for name in names:
        script = bin_dir / name
        body = f'#!/bin/sh\necho "{name} $*" >>"{log}"\n'
        if name == "curl":
            body += 'while [ $# -gt 0 ]; do if [ "$1" = -o ]; then : >"$2"; fi; shift; done\n'
        if name == "getent":
            body += "exit 2\n"
        if name in FAKE_OUTPUT:
            body += f"echo {FAKE_OUTPUT[name]}\n"
        script.write_text(body)
        script.chmod(0o755)
    return bin_dir


def _run_install(tmp_path: Path, argv: list[str], names: list[str]) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = _fake_bin(tmp_path, names)
    for tool in ("sh", "mktemp", "cat", "sed"):  # only these from the real system
        real = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        os.symlink(real, bin_dir / tool)
    proc = subprocess.run(argv, env={"PATH": str(bin_dir)}, capture_output=True, text=True, cwd=tmp_path)
    log = tmp_path / "log"
    return proc, log.read_text() if log.exists() else ""


def test_install_script_downloads_and_installs_with_apt(tmp_path: Path) -> None:
    url = "https://example.com/pkg?a=1&b=$(id)"
    argv = _install_script(render_user_data("c:1", TOKEN, "f", package_url=url))
    proc, log = _run_install(tmp_path, argv, ["apt-get", "curl", "getent"])
    assert proc.returncode == 0, proc.stderr
    lines = log.splitlines()
    assert lines[0].startswith("curl -fsSL") and lines[0].endswith(url)
    assert lines[1] == "apt-get -o DPkg::Lock::Timeout=300 update -q"
    assert lines[2].startswith("apt-get -o DPkg::Lock::Timeout=300 install -y -q /")
    assert lines[2].endswith("/dstack-agent.deb")


@pytest.mark.parametrize(
    ("manager", "arch_tool", "expected"),
    [("apt-get", "dpkg", "dstack-agent_0.1.0-1_arm64.deb"), ("dnf", "uname", "dstack-agent_0.1.0-1_aarch64.deb")],
)
def test_install_script_resolves_arch_in_the_url_on_the_vm(
    manager: str, arch_tool: str, expected: str, tmp_path: Path
) -> None:
    """One user-data for a mixed fleet: {arch} is the VM's word, Debian's for a .deb, rpm's for an .rpm."""
    url = "https://example.com/{arch}/dstack-agent_0.1.0-1_{arch}.deb"
    text = render_user_data("c:1", TOKEN, "f", package_url=url)
    assert _install_script(text)[4] == url  # left for the VM: the renderer cannot know its arch
    proc, log = _run_install(tmp_path, _install_script(text), [manager, arch_tool, "curl", "getent"])
    assert proc.returncode == 0, proc.stderr
    [download] = [line for line in log.splitlines() if line.startswith("curl ")]
    arch = expected.rsplit("_", 1)[1].removesuffix(".deb")
    assert download.endswith(f" https://example.com/{arch}/{expected}"), download
    assert "{" not in download


def test_install_script_takes_the_image_file_with_dnf(tmp_path: Path) -> None:
    (tmp_path / "pkgs").mkdir()
    for name in ("dstack-agent-0.1.0.rpm", "dstack-agent-0.2.0.rpm"):
        (tmp_path / "pkgs" / name).write_text("")
    pattern = str(tmp_path / "pkgs" / "dstack-agent-*.rpm")
    argv = _install_script(render_user_data("c:1", TOKEN, "f", package_path=pattern))
    proc, log = _run_install(tmp_path, argv, ["dnf", "getent"])
    assert proc.returncode == 0, proc.stderr
    assert log.splitlines()[0] == f"dnf install -y {tmp_path}/pkgs/dstack-agent-0.2.0.rpm"


def test_install_script_fails_when_the_image_file_is_missing(tmp_path: Path) -> None:
    argv = _install_script(render_user_data("c:1", TOKEN, "f", package_path="/nonexistent/dstack-agent_*.deb"))
    proc, log = _run_install(tmp_path, argv, ["apt-get", "getent"])
    assert proc.returncode == 1
    assert "no package at /nonexistent/dstack-agent_*.deb" in proc.stderr
    assert "install" not in log


def test_cli_creates_one_single_use_token_and_prints_user_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DSTACK_DATABASE_URL", raising=False)
    data_dir = served_data_dir(tmp_path / "data")
    rc = main(
        [
            "cloud-init",
            "--fleet",
            "gpu",
            "--ttl",
            "30m",
            "--controller",
            "ctl.example.com:7443",
            "--package-path",
            "/opt/dstack/dstack-agent_*.deb",
            "--label",
            "rack=r12",
            "--zone",
            "z1",
            "--data-dir",
            str(data_dir),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    doc = _parse(out)
    agent = _parse(_agent_file(doc)["content"])
    assert agent["controller"] == "ctl.example.com:7443"
    assert agent["fleet"] == "gpu"
    assert agent["zone"] == "z1" and agent["labels"] == {"rack": "r12"}
    parsed = parse_token(agent["join_token"])
    assert parsed.kind == "join"
    tokens = open_store(default_database_url(data_dir)).list_tokens()
    assert len(tokens) == 2  # the admin API token and this join token
    [token] = [t for t in tokens if t.kind == "join"]
    assert (token.id, token.kind, token.fleet, token.uses_left) == (parsed.id, "join", "gpu", 1)
    assert token.expires_at is not None


@pytest.mark.parametrize(
    ("extra_args", "message"),
    [
        (["--controller", "nohostport"], "--controller"),
        (["--controller", "0.0.0.0:7443"], "listen address"),
        (["--ttl", "soon"], "--ttl"),
        (["--label", "novalue"], "--label"),
        (["--package-path", "relative.deb"], "not absolute"),
        (["--package-url", "ftp://x/a.deb"], "http(s) URL"),
        (["--package-url", "https://x/a_{version}_{arch}.deb"], "the only placeholder is {arch}"),
    ],
)
def test_cli_bad_input_exits_2_and_spends_no_token(
    extra_args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    rc = main(["cloud-init", "--fleet", "gpu", "--data-dir", str(data_dir), *extra_args])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not data_dir.exists()
