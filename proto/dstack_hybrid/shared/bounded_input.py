"""Configuration text from users and clients, read within bounds: size, nesting and alias expansion.

A YAML file can ask for far more work than its size suggests: aliases of aliases ("billion laughs")
expand exponentially in every walk after parsing, thousands of nested brackets exhaust the recursion
that composing and every later walk need, and a path like /dev/zero never ends. dstackctl's task,
fleet and volume files, the controller's config file, agent.yaml and the controller's submit and
apply calls (which receive the same configuration as JSON) all read through here, so one set of
limits holds wherever user text enters. The checks run inside ruamel's composer, the one step that
sees every alias and every level, never as a pattern over the text.

Both programs import this module; it imports neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.events import AliasEvent, MappingStartEvent, SequenceStartEvent
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.scanner import RoundTripScanner, Scanner

# A real task, fleet or volume file is a few KiB; 1 MiB leaves a hundred times that.
MAX_BYTES = 1024 * 1024
MAX_BYTES_TEXT = "1 MiB"
# Collections inside collections; dstack's deepest field (a fleet's ssh_config hosts) is about 5.
MAX_DEPTH = 64
# Values that aliases may add on top of what is written out: a shared `env:` block used in a few
# places adds tens; a billion-laughs bomb adds 10**9.
MAX_ALIAS_VALUES = 10_000


class InputRefused(ValueError):
    """Text past one of the bounds; `str()` is one sentence naming the input and the bound."""


def read_limited(path: Path, what: str) -> str:
    """The file's text, reading at most MAX_BYTES + 1 bytes, so /dev/zero and endless pipes end at once.

    Pipes and devices are read like files (`/dev/stdin` and `<(...)` must work); OSError and
    UnicodeDecodeError are left to the caller, whose sentences name the file its own way.
    """
    with open(path, "rb") as stream:
        data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise InputRefused(f"{path} is larger than the {MAX_BYTES_TEXT} limit for a {what} file")
    return data.decode("utf-8")


def load_yaml(text: str, name: str, *, round_trip: bool = True) -> Any:
    """One YAML document, within the bounds; `name` is what the sentences call the text.

    round_trip keeps each key's line (`.lc`) for error messages; the plain loader gives dicts and
    lists. Both are ruamel's pure-Python loaders: the C parser would skip the composer's checks.
    Syntax errors are ruamel's YAMLError, for the caller to explain.
    """
    _check_size(text, name)
    yaml = YAML(typ="rt" if round_trip else "safe", pure=True)
    yaml.Scanner = _BoundedRoundTripScanner if round_trip else _BoundedScanner
    yaml.Composer = _BoundedComposer
    try:
        return yaml.load(text)
    except _Refused as exc:
        line = exc.mark.line + 1 if exc.mark is not None else None
        raise InputRefused(exc.sentence(name, line)) from None


def load_settings_file(path: Path, what: str) -> dict[Any, Any]:
    """A settings file (the agent's config and drop-ins, dstackctl's ctl.yaml): a mapping, read
    within the bounds; empty for an empty file. InputRefused, one sentence naming the file, for
    anything else (unreadable, not YAML, too big or deep, not a mapping)."""
    from ruamel.yaml.error import YAMLError

    try:
        loaded = load_yaml(read_limited(path, what), str(path), round_trip=False)
    except (OSError, UnicodeDecodeError, YAMLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise InputRefused(f"cannot read {path}: {reason}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InputRefused(f"{path} must be a mapping of settings")
    return loaded


def check_json(text: str, name: str) -> None:
    """The same bounds for configuration sent as JSON (the submit and apply calls); `name` is
    what the sentences call it ("the task configuration").

    Invalid JSON is let through: the model's validation says what is wrong with it.
    """
    _check_size(text, name)
    try:
        value = json.loads(text)
    except RecursionError:  # nested past the interpreter's own limit, so past ours too
        raise InputRefused(f"{name} nests more than {MAX_DEPTH} levels deep") from None
    except ValueError:
        return
    if _json_depth(value) > MAX_DEPTH:
        raise InputRefused(f"{name} nests more than {MAX_DEPTH} levels deep")


def _check_size(text: str, name: str) -> None:
    # len() counts characters, each at least one byte: encode only when it could be close.
    if len(text) > MAX_BYTES or (len(text) * 4 > MAX_BYTES and len(text.encode("utf-8", "replace")) > MAX_BYTES):
        raise InputRefused(f"{name} is larger than the {MAX_BYTES_TEXT} limit")


def _json_depth(value: Any) -> int:
    """Nesting of lists and objects, without recursion (the value may be deep)."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                return depth
            pending.extend((child, depth) for child in item)
    return deepest


class _Refused(Exception):
    """Raised inside the composer, which does not know the file's name; load_yaml words it."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.mark = problem, mark

    def sentence(self, name: str, line: int | None) -> str:
        # "... deep at line 3: hint": the place belongs with the problem, before any advice.
        problem, colon, hint = self.problem.partition(": ")
        at_line = f" at line {line}" if line is not None else ""
        return f"{name} {problem}{at_line}{colon}{hint}"


class _FlowDepthLimit:
    """Refuses `[[[[...` while scanning: the scanner reads ahead of the composer, and its
    bookkeeping of possible keys costs time in proportion to the open brackets for every token,
    so 3000 brackets took over a second before the composer saw level 65."""

    flow_level: int
    reader: Any

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise _Refused(f"nests more than {MAX_DEPTH} levels deep", self.reader.get_mark())
        super().fetch_flow_collection_start(TokenClass, to_push)  # type: ignore[misc]


class _BoundedScanner(_FlowDepthLimit, Scanner):
    pass


class _BoundedRoundTripScanner(_FlowDepthLimit, RoundTripScanner):
    pass


class _BoundedComposer(Composer):
    """ruamel's composer, counting as it goes: open collections, and the values each alias adds.

    Every composed node's size (values in it, itself included) and height (collection levels in
    it) is kept, so an alias is charged what it would expand to before anything walks it.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        # YAML lets an anchor be defined again (the later one wins); ruamel's warning about it
        # would print several lines into dstackctl's one-line answers.
        self.warn_double_anchors = False
        self._open_collections = 0
        self._alias_values = 0
        self._measures: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            self._charge_alias(event)
            return super().compose_node(parent, index)
        is_collection = isinstance(event, MappingStartEvent | SequenceStartEvent)
        if is_collection:
            self._open_collections += 1
            if self._open_collections > MAX_DEPTH:
                raise _Refused(f"nests more than {MAX_DEPTH} levels deep", event.start_mark)
        node = super().compose_node(parent, index)
        if is_collection:
            self._open_collections -= 1
        self._measures[id(node)] = self._measure(node)
        return node

    def _charge_alias(self, event: AliasEvent) -> None:
        target = self.anchors.get(event.anchor)
        if target is None:
            return  # an undefined alias: the composer's own error says so
        measure = self._measures.get(id(target))
        if measure is None:  # still being composed: `a: &a [*a]` would expand forever
            raise _Refused(f"uses alias *{event.anchor} inside the value it names", event.start_mark)
        values, height = measure
        self._alias_values += values
        if self._alias_values > MAX_ALIAS_VALUES:
            raise _Refused(
                f"expands its aliases to more than {MAX_ALIAS_VALUES} values: write them out or use fewer aliases",
                event.start_mark,
            )
        if self._open_collections + height > MAX_DEPTH:
            raise _Refused(f"nests more than {MAX_DEPTH} levels deep through alias *{event.anchor}", event.start_mark)

    def _measure(self, node: Node) -> tuple[int, int]:
        if isinstance(node, SequenceNode):
            children: list[Node] = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            return 1, 0
        values, height = 1, 0
        for child in children:
            child_values, child_height = self._measures[id(child)]
            values += child_values
            height = max(height, child_height)
        return values, height + 1
