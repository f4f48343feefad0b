"""The bounded reader every user YAML and every submitted configuration goes through: size, nesting
and alias expansion, each refused with one sentence, while real files load exactly as before."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dstack_hybrid.shared.bounded_input import (
    MAX_ALIAS_VALUES,
    MAX_BYTES,
    MAX_DEPTH,
    InputRefused,
    check_json,
    load_yaml,
    read_limited,
)
from ruamel.yaml import YAML

from agent.config import AgentConfigError, load_config
from controller.configs.loader import ConfigError, load_task_file, parse_task_text
from tests.support.hostile_yaml import TASK_HEAD, alias_bomb, deep_block, deep_list, deep_map

EXAMPLES = Path(__file__).parent.parent / "fixtures" / "dstack-examples"
# --- each bound, in both loaders --------------------------------------------------------------


@pytest.mark.parametrize("round_trip", [True, False])
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (alias_bomb(), f"expands its aliases to more than {MAX_ALIAS_VALUES} values at line 7"),
        (deep_list(3000), f"nests more than {MAX_DEPTH} levels deep at line 3"),
        (deep_map(3000), f"nests more than {MAX_DEPTH} levels deep at line 3"),
        (deep_block(200), f"nests more than {MAX_DEPTH} levels deep at line 65"),
        ("a: &a [*a]\n", "uses alias *a inside the value it names at line 1"),
        ("a: &a {b: [*a]}\n", "uses alias *a inside the value it names at line 1"),
    ],
    ids=["alias-bomb", "list-3000", "map-3000", "block-200", "self-alias", "self-alias-nested"],
)
def test_each_bound_is_one_sentence_naming_the_file(text: str, problem: str, round_trip: bool) -> None:
    with pytest.raises(InputRefused) as refused:
        load_yaml(text, "task.yaml", round_trip=round_trip)
    assert str(refused.value).startswith(f"task.yaml {problem}")
    assert "\n" not in str(refused.value)


def test_nesting_is_counted_through_aliases() -> None:
    """An alias of a 40-deep value used 40 levels down is 80 deep once expanded."""
    deep = "[" * 40 + "]" * 40
    text = f"a: &deep {deep}\nb: " + "[" * 40 + "*deep" + "]" * 40 + "\n"
    with pytest.raises(InputRefused, match=r"nests more than 64 levels deep through alias \*deep at line 2"):
        load_yaml(text, "t.yaml")


def test_depth_up_to_the_limit_loads() -> None:
    # The document's own mapping is the first level, `commands:` the second.
    assert load_yaml(TASK_HEAD + "commands: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n", "t")
    with pytest.raises(InputRefused):
        load_yaml(TASK_HEAD + "commands: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n", "t")


def test_aliases_within_the_budget_load_as_written_out() -> None:
    """A shared block used a few times is what anchors are for, and stays allowed."""
    text = "common: &env {A: '1', B: '2'}\nx: *env\ny: *env\nz: [*env, *env]\n"
    assert load_yaml(text, "t.yaml", round_trip=False) == {
        "common": {"A": "1", "B": "2"},
        "x": {"A": "1", "B": "2"},
        "y": {"A": "1", "B": "2"},
        "z": [{"A": "1", "B": "2"}, {"A": "1", "B": "2"}],
    }
    # A list of 999 strings is 1000 values; ten aliases of it are exactly the budget, eleven are over.
    items = "[" + ",".join(["x"] * 999) + "]"
    assert load_yaml(f"a: &a {items}\nb: [" + ",".join(["*a"] * 10) + "]\n", "t")
    with pytest.raises(InputRefused, match="aliases"):
        load_yaml(f"a: &a {items}\nb: [" + ",".join(["*a"] * 11) + "]\n", "t")


def test_a_redefined_anchor_is_used_without_printing_a_warning(recwarn: pytest.WarningsRecorder) -> None:
    text = "a: &x 1\nb: &x 2\nc: *x\n"
    assert load_yaml(text, "t.yaml", round_trip=False) == {"a": 1, "b": 2, "c": 2}
    assert not recwarn.list


def test_merge_keys_are_aliases_too() -> None:
    text = "base: &base {a: 1, b: 2}\nderived:\n  <<: *base\n  c: 3\n"
    assert load_yaml(text, "t.yaml", round_trip=False)["derived"] == {"a": 1, "b": 2, "c": 3}


def test_text_over_the_size_limit_is_refused_before_parsing() -> None:
    text = TASK_HEAD + "commands:\n" + "  - echo hi\n" * (MAX_BYTES // 12 + 1)
    with pytest.raises(InputRefused, match=r"^task.yaml is larger than the 1 MiB limit$"):
        load_yaml(text, "task.yaml")
    # Size is counted in bytes: 600k two-byte characters are 1.2 MB.
    with pytest.raises(InputRefused, match="1 MiB"):
        load_yaml("a: " + "é" * 600_000 + "\n", "t.yaml")


@pytest.mark.parametrize("round_trip", [True, False])
def test_real_dstack_files_load_exactly_as_ruamel_loads_them(round_trip: bool) -> None:
    files = sorted(EXAMPLES.glob("*.dstack.yml"))
    assert len(files) >= 19
    for path in files:
        text = path.read_text()
        plain = YAML(typ="rt" if round_trip else "safe", pure=True).load(text)
        assert load_yaml(text, path.name, round_trip=round_trip) == plain, path.name


# --- files: at most the limit + 1 bytes are read ------------------------------------------------


def test_dev_zero_and_a_large_file_are_refused_after_reading_the_limit(tmp_path: Path) -> None:
    with pytest.raises(InputRefused, match=r"^/dev/zero is larger than the 1 MiB limit for a task file$"):
        read_limited(Path("/dev/zero"), "task")
    big = tmp_path / "big.yaml"
    big.write_text(TASK_HEAD + "#" * (2 * MAX_BYTES))
    with pytest.raises(InputRefused, match=r"big\.yaml is larger than the 1 MiB limit for a fleet file"):
        read_limited(big, "fleet")
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"#" * MAX_BYTES)
    assert len(read_limited(exact, "task")) == MAX_BYTES


@pytest.fixture
def endless_fifo(tmp_path: Path) -> Iterator[Path]:
    """A named pipe a writer fills without end, as `-f <(yes)` would."""
    fifo = tmp_path / "endless"
    os.mkfifo(fifo)
    stop = threading.Event()

    def write() -> None:
        try:
            with open(fifo, "wb") as pipe:
                while not stop.is_set():
                    pipe.write(b"# " * 65536)
        except BrokenPipeError:
            pass  # the reader stopped reading: what the test expects

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    yield fifo
    stop.set()
    writer.join(timeout=10)


def test_an_endless_pipe_ends_at_the_limit(endless_fifo: Path) -> None:
    with pytest.raises(InputRefused, match="larger than the 1 MiB limit"):
        read_limited(endless_fifo, "task")


def test_a_pipe_within_the_limit_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "small"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(TASK_HEAD))
    writer.start()
    assert read_limited(fifo, "task") == TASK_HEAD
    writer.join()


# --- every reader of user YAML goes through it --------------------------------------------------


@pytest.mark.parametrize("text", [alias_bomb(), deep_list(3000), deep_map(3000)], ids=["bomb", "list", "map"])
def test_the_config_loader_refuses_with_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))} (expands|nests)"):
        load_task_file(path)
    with pytest.raises(ConfigError, match=r"^task\.yaml (expands|nests)"):
        parse_task_text(text, "task.yaml")


def test_the_agent_config_is_read_within_the_same_bounds(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(alias_bomb().replace(TASK_HEAD, "controller: 127.0.0.1:7443\n"))
    with pytest.raises(AgentConfigError, match=f"^{re.escape(str(path))} expands its aliases"):
        load_config(path)
    path.write_text("controller: 127.0.0.1:7443\nlabels: " + "{a: " * 3000 + "b" + "}" * 3000 + "\n")
    with pytest.raises(AgentConfigError, match=f"^{re.escape(str(path))} nests more than 64 levels deep"):
        load_config(path)


# --- the same bounds for configuration sent as JSON ---------------------------------------------


def test_json_within_the_bounds_passes_and_invalid_json_is_left_to_validation() -> None:
    check_json(json.dumps({"type": "task", "image": "x", "env": {"A": "1"}}), "the task configuration")
    check_json("not json at all", "the task configuration")


def test_json_past_the_bounds_is_refused() -> None:
    with pytest.raises(InputRefused, match=r"^the task configuration nests more than 64 levels deep$"):
        check_json('{"commands": ' + "[" * 3000 + "]" * 3000 + "}", "the task configuration")
    with pytest.raises(InputRefused, match=r"^the task configuration nests more than 64 levels deep$"):
        check_json('{"env": ' + '{"a": ' * 70 + "1" + "}" * 70 + "}", "the task configuration")
    commands = json.dumps({"commands": ["lol"] * 300_000})  # the bomb's first levels, written out
    with pytest.raises(InputRefused, match=r"^the task configuration is larger than the 1 MiB limit$"):
        check_json(commands, "the task configuration")
