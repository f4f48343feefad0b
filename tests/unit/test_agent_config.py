"""agent.yaml loading: known keys, errors naming the key, environment overrides."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from agent import config as agent_config
from agent.config import DEFAULT_CONTROLLER, AgentConfig, AgentConfigError, load_config

ENV = ("DSTACK_CONTROLLER", "DSTACK_JOIN_TOKEN", "DOCKER_HOST", "INVOCATION_ID")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    # Never read the real /etc/dstack/agent.yaml from a test.
    monkeypatch.setattr(agent_config, "DEFAULT_CONFIG", tmp_path / "etc" / "agent.yaml")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_every_documented_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        controller: ctl.example.com:7443
        join_token: dj1.abc.secret
        fleet: on-prem
        region: eu-west
        zone: eu-west-1a
        labels:
          rack: "4"
          gpu: a100
        arch: arm64
        cloud: off
        docker_host: unix:///run/docker.sock
        name: node-7
        """,
    )
    cfg = load_config(path)
    assert cfg == AgentConfig(
        controller="ctl.example.com:7443",
        join_token="dj1.abc.secret",
        fleet="on-prem",
        region="eu-west",
        zone="eu-west-1a",
        labels={"rack": "4", "gpu": "a100"},
        arch="arm64",
        cloud="off",
        docker_host="unix:///run/docker.sock",
        name="node-7",
    )


@pytest.mark.parametrize("cloud", ["auto", "off", "aws", "azure", "gcp"])
def test_cloud_values(tmp_path: Path, cloud: str) -> None:
    assert load_config(write(tmp_path, f"cloud: {cloud}\n")).cloud == cloud


def test_defaults_for_empty_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg == AgentConfig()
    assert cfg.controller == DEFAULT_CONTROLLER == "127.0.0.1:7443"
    assert (cfg.join_token, cfg.arch, cfg.cloud, cfg.labels) == (None, None, "auto", {})


def test_labels_default_is_not_shared() -> None:
    a, b = AgentConfig(), AgentConfig()
    a.labels["x"] = "1"
    assert b.labels == {}


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "controller: a:1\nzones: [a, b]\n")
    with pytest.raises(AgentConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"unknown key 'zones' in {path}"


@pytest.mark.parametrize("value", ["x86_64", "aarch64", "riscv64", "AMD64"])
def test_wrong_arch_value(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"arch: {value}\n")
    with pytest.raises(AgentConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert message.startswith(f"invalid arch in {path}: ")
    assert "amd64" in message and "arm64" in message


def test_wrong_cloud_and_label_values(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match=r"^invalid cloud in .*agent\.yaml: "):
        load_config(write(tmp_path, "cloud: oracle\n"))
    with pytest.raises(AgentConfigError, match=r"^invalid labels in .*agent\.yaml: "):
        load_config(write(tmp_path, "labels: [a, b]\n"))


def test_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- controller\n- zone\n")
    with pytest.raises(AgentConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path} must be a mapping of settings"


def test_bad_yaml_is_one_sentence(tmp_path: Path) -> None:
    path = write(tmp_path, "controller: [unclosed\n")
    with pytest.raises(AgentConfigError) as exc:
        load_config(path)
    assert str(exc.value).startswith(f"cannot read {path}: ")
    assert "\n" not in str(exc.value)


def test_named_missing_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(AgentConfigError) as exc:
        load_config(missing)
    assert str(exc.value) == f"config file not found: {missing}"


def test_missing_default_file_is_fine() -> None:
    assert load_config(None) == AgentConfig()


def test_default_file_is_read_when_present(tmp_path: Path) -> None:
    default = tmp_path / "etc" / "agent.yaml"
    default.parent.mkdir()
    default.write_text("zone: z9\n")
    assert load_config(None).zone == "z9"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "controller: file:1\njoin_token: from-file\ndocker_host: unix:///file.sock\nzone: z\n")
    monkeypatch.setenv("DSTACK_CONTROLLER", "env:2")
    monkeypatch.setenv("DSTACK_JOIN_TOKEN", "dj1.env.tok")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    cfg = load_config(path)
    assert (cfg.controller, cfg.join_token, cfg.docker_host, cfg.zone) == (
        "env:2",
        "dj1.env.tok",
        "tcp://127.0.0.1:2375",
        "z",
    )


def test_environment_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSTACK_CONTROLLER", "10.0.0.5:7443")
    monkeypatch.setenv("DSTACK_JOIN_TOKEN", "dj1.a.b")
    cfg = load_config(None)
    assert (cfg.controller, cfg.join_token) == ("10.0.0.5:7443", "dj1.a.b")


def test_empty_environment_values_do_not_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSTACK_CONTROLLER", "")
    monkeypatch.setenv("DSTACK_JOIN_TOKEN", "")
    cfg = load_config(write(tmp_path, "controller: file:1\njoin_token: t\n"))
    assert (cfg.controller, cfg.join_token) == ("file:1", "t")


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert agent_config.default_state_dir() == tmp_path / ".dstack-agent"
    monkeypatch.setenv("INVOCATION_ID", "abc123")
    assert agent_config.running_as_service()
    assert agent_config.default_state_dir() == Path("/var/lib/dstack-agent")


# ------------------------------------------------------------------ drop-in directory (agent.d/)


def drop_in(tmp_path: Path, name: str, text: str) -> Path:
    directory = tmp_path / "agent.d"
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def test_drop_ins_merge_over_the_file_in_lexical_order(tmp_path: Path) -> None:
    path = write(tmp_path, "controller: file:1\nzone: z-file\nregion: r-file\nname: from-file\n")
    # Written in an order other than the lexical one, so directory order cannot pass for it.
    drop_in(tmp_path, "90-late.yaml", "zone: z-90\n")
    drop_in(tmp_path, "10-early.yaml", "zone: z-10\nregion: r-10\nfleet: f-10\n")
    drop_in(tmp_path, "50-cloud-init.yaml", "zone: z-50\njoin_token: t-50\nregion: null\n")
    cfg = load_config(path)
    assert cfg.controller == "file:1"  # no drop-in names it
    assert cfg.name == "from-file"
    assert cfg.fleet == "f-10"
    assert cfg.region == "r-10"  # null in a later file means "not set here", not "unset"
    assert cfg.join_token == "t-50"
    assert cfg.zone == "z-90"  # the last file wins


def test_labels_merge_label_by_label(tmp_path: Path) -> None:
    path = write(tmp_path, "labels: {rack: r1, ssd: 'true'}\n")
    drop_in(tmp_path, "10-a.yaml", "labels: {rack: r2, gpu: a100}\n")
    drop_in(tmp_path, "50-cloud-init.yaml", "labels: {}\n")  # what the user-data writes without --label
    assert load_config(path).labels == {"rack": "r2", "ssd": "true", "gpu": "a100"}


def test_only_yaml_files_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, "zone: z-file\n")
    for name in ("50-x.yaml.dpkg-old", "50-x.yaml.dpkg-dist", "50-x.yaml~", "60-x.yml", "70-x.conf", ".80-x.yaml"):
        drop_in(tmp_path, name, "zone: ignored\nnot_a_key: 1\n")
    (tmp_path / "agent.d" / "90-dir.yaml").mkdir()
    assert load_config(path).zone == "z-file"


def test_the_environment_still_wins_over_drop_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "")
    drop_in(tmp_path, "50-cloud-init.yaml", "controller: dropin:1\njoin_token: t\n")
    monkeypatch.setenv("DSTACK_CONTROLLER", "env:2")
    cfg = load_config(path)
    assert (cfg.controller, cfg.join_token) == ("env:2", "t")


def test_missing_directory_is_fine_and_a_missing_file_is_not(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "zone: z\n")).zone == "z"  # no agent.d/
    drop_in(tmp_path, "50-x.yaml", "zone: z-dropin\n")
    with pytest.raises(AgentConfigError, match=r"^config file not found: "):
        load_config(tmp_path / "other.yaml")  # other.d/ is not agent.d/ either


def test_default_file_missing_but_drop_in_present(tmp_path: Path) -> None:
    """A host whose agent.yaml was deleted still reads agent.d/ beside where it belongs."""
    directory = tmp_path / "etc" / "agent.d"
    directory.mkdir(parents=True)
    (directory / "50-cloud-init.yaml").write_text("zone: z9\n")
    assert load_config(None).zone == "z9"


def test_drop_in_dir_is_beside_the_named_file(tmp_path: Path) -> None:
    other = tmp_path / "x" / "custom.yaml"
    other.parent.mkdir()
    other.write_text("zone: a\n")
    (tmp_path / "x" / "custom.d").mkdir()
    (tmp_path / "x" / "custom.d" / "1.yaml").write_text("zone: b\n")
    drop_in(tmp_path, "1.yaml", "zone: c\n")  # agent.d/ of another file: not read
    assert agent_config.drop_in_dir(other) == tmp_path / "x" / "custom.d"
    assert load_config(other).zone == "b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("zones: [a]\n", "unknown key 'zones' in {file}"),
        ("arch: x86_64\n", "invalid arch in {file}: 'x86_64' is not one of amd64, arm64"),
        ("labels: [a]\n", "invalid labels in {file}: expected a mapping of names to values"),
        ("- zone\n", "{file} must be a mapping of settings"),
    ],
)
def test_errors_name_the_drop_in(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "zone: z\n")
    drop_in(tmp_path, "10-ok.yaml", "region: r\n")
    bad = drop_in(tmp_path, "50-bad.yaml", text)
    with pytest.raises(AgentConfigError) as exc:
        load_config(path)
    assert str(exc.value) == message.format(file=bad)


def test_unparsable_drop_in_is_one_sentence(tmp_path: Path) -> None:
    bad = drop_in(tmp_path, "50-bad.yaml", "zone: [unclosed\n")
    with pytest.raises(AgentConfigError) as exc:
        load_config(write(tmp_path, ""))
    assert str(exc.value).startswith(f"cannot read {bad}: ") and "\n" not in str(exc.value)


def test_drop_in_path_that_is_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    (tmp_path / "agent.d").write_text("zone: z\n")
    with pytest.raises(AgentConfigError, match=r"^cannot read .*agent\.d: Not a directory$"):
        load_config(path)


def test_notice_poll_interval(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "controller: c:1\n")).notice_poll_s == 5.0  # AWS's recommendation
    assert load_config(write(tmp_path, "notice_poll_s: 0.2\n")).notice_poll_s == 0.2
    why = r"^invalid notice_poll_s in .*agent\.yaml: expected seconds from 0.1 to 60$"
    for bad in ("0", "-1", "61", "often", "true"):
        with pytest.raises(AgentConfigError, match=why):
            load_config(write(tmp_path, f"notice_poll_s: {bad}\n"))


# ---------------------------------------------------------------- host policy


def test_host_policy_keys_default_to_deny_system_and_no_privileged(tmp_path: Path) -> None:
    from agent.policy import host_policy

    config = load_config(write(tmp_path, "fleet: f\n"))
    policy = host_policy(config, tmp_path / "state")
    assert (policy.host_paths, policy.allow, policy.allow_privileged) == ("deny-system", (), False)
    assert str((tmp_path / "state").resolve()) in policy.never
    assert "/run/docker.sock" in policy.never or "/var/run/docker.sock" in policy.never


def test_host_policy_allow_list_and_drop_ins_win_key_by_key(tmp_path: Path) -> None:
    from agent.policy import host_policy

    path = write(
        tmp_path,
        """\
        host_paths:
          mode: allow-list
          allow: [/data/, /checkpoints]
        allow_privileged: true
        """,
    )
    config = load_config(path)
    assert config.host_paths == {"mode": "allow-list", "allow": ["/data", "/checkpoints"]}
    (tmp_path / "agent.d").mkdir()
    (tmp_path / "agent.d" / "10-narrow.yaml").write_text("host_paths:\n  allow: [/scratch]\nallow_privileged: false\n")
    narrowed = host_policy(load_config(path), tmp_path / "state")
    assert (narrowed.host_paths, narrowed.allow, narrowed.allow_privileged) == ("allow-list", ("/scratch",), False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host_paths: /data\n", "invalid host_paths in"),
        ("host_paths: {mode: allow-all}\n", "invalid host_paths.mode in"),
        ("host_paths: {mode: allow-list, allow: [data]}\n", "'data' is not an absolute path"),
        ("host_paths: {mode: allow-list, allow: [/data/../etc]}\n", "'/data/../etc' is not an absolute path"),
        ("host_paths: {mode: allow-list, allow: /data}\n", "expected a list of absolute paths"),
        ("host_paths: {enabled: false}\n", "unknown key 'enabled' under host_paths"),
        ("host_paths: {allow: [/data]}\n", "host_paths.allow is set, but host_paths.mode is not allow-list"),
        ("allow_privileged: yes-please\n", "invalid allow_privileged in"),
        ("allow_docker: true\n", "unknown key 'allow_docker'"),
    ],
)
def test_host_policy_mistakes_are_one_sentence(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AgentConfigError, match=re.escape(message)):
        load_config(write(tmp_path, text))


def test_the_shipped_policy_examples_are_real_keys(tmp_path: Path) -> None:
    """Each commented policy example in the package's agent.yaml loads when uncommented."""
    shipped = (Path(__file__).resolve().parents[2] / "packaging" / "config" / "agent.yaml").read_text()
    block = shipped[shipped.index("#host_paths:") :]
    first, _, second = block.partition("# or, to admit only some directories:\n")
    for example in (first, second):
        # Commented keys are `#key:` and `#  nested:`; prose is `# Words`.
        keys = [line[1:] for line in example.splitlines() if re.match(r"#(\S|  )", line)]
        text = "\n".join(keys)
        config = load_config(write(tmp_path, text + "\n"))
        assert config.host_paths["mode"] in ("deny-system", "allow-list")
        assert config.allow_privileged is False
