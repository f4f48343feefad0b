"""Read configuration YAML and turn every mistake into one sentence naming the file and line.

ruamel's round-trip loader keeps each key's position (`.lc`), which pydantic's error
locations are mapped back onto. Files and text are read through dstack_hybrid.shared.bounded_input, so
an oversized file, deep nesting or an alias bomb is refused before anything walks it.
Configuration types are found by `type:` in `CONFIGURATION_TYPES`; a new type is one more entry
there.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from dstack_hybrid.shared.bounded_input import InputRefused, load_yaml, read_limited
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean

from controller.configs.fleet import FleetConfiguration
from controller.configs.task import TaskConfiguration
from controller.configs.volume import VolumeConfiguration

CONFIGURATION_TYPES: dict[str, type[BaseModel]] = {
    "task": TaskConfiguration,
    "fleet": FleetConfiguration,
    "volume": VolumeConfiguration,
}

# What `dstackctl apply -f` takes; a task goes to `dstackctl submit -f`.
APPLY_TYPES = ("fleet", "volume")

AnyConfiguration = TaskConfiguration | FleetConfiguration | VolumeConfiguration
AppliedConfiguration = FleetConfiguration | VolumeConfiguration

Loc = tuple[int | str, ...]
ModelT = typing.TypeVar("ModelT", bound=BaseModel)
_ABSENT = object()


class ConfigError(Exception):
    """A configuration the user must fix; `str()` is one sentence fit to print as is."""

    def __init__(self, message: str, *, line: int | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.line = line  # 1-based, when the mistake has a place in the file
        self.key = key  # dotted path of the offending key, e.g. "resources.cpu"


def load_task_file(path: Path) -> TaskConfiguration:
    return parse_task_text(_read(path, "task"), str(path))


def parse_task_text(text: str, filename: str) -> TaskConfiguration:
    # expected="task" makes CONFIGURATION_TYPES["task"] the only model that can come back.
    return typing.cast(TaskConfiguration, parse_config_text(text, filename, expected="task"))


def load_fleet_file(path: Path) -> FleetConfiguration:
    return parse_fleet_text(_read(path, "fleet"), str(path))


def parse_fleet_text(text: str, filename: str) -> FleetConfiguration:
    return typing.cast(FleetConfiguration, parse_config_text(text, filename, expected="fleet"))


def load_volume_file(path: Path) -> VolumeConfiguration:
    return parse_volume_text(_read(path, "volume"), str(path))


def parse_volume_text(text: str, filename: str) -> VolumeConfiguration:
    return typing.cast(VolumeConfiguration, parse_config_text(text, filename, expected="volume"))


def load_any_file(path: Path) -> AnyConfiguration:
    """A task, fleet or volume file, whichever its `type:` says."""
    return parse_any_text(_read(path, "configuration"), str(path))


def parse_any_text(text: str, filename: str) -> AnyConfiguration:
    return typing.cast(AnyConfiguration, parse_config_text(text, filename, expected=("task", *APPLY_TYPES)))


def load_apply_file(path: Path) -> AppliedConfiguration:
    """What `dstackctl apply -f` takes: a fleet or volume file; a task file is refused with the command it needs."""
    return parse_apply_text(_read(path, "configuration"), str(path))


def parse_apply_text(text: str, filename: str) -> AppliedConfiguration:
    data = _parse_yaml(text, filename)
    # Before validation: a task file that is also wrong is still best answered with "use submit".
    if isinstance(data, dict) and data.get("type") == "task":
        raise ConfigError(
            f"{filename} is a task: use dstackctl submit -f {filename}", line=_key_line(data, "type"), key="type"
        )
    return typing.cast(AppliedConfiguration, _validate(data, filename, APPLY_TYPES))


def load_config_file(path: Path, expected: str | Collection[str] | None = None) -> BaseModel:
    what = expected if isinstance(expected, str) else "configuration"
    return parse_config_text(_read(path, what), str(path), expected)


def parse_config_text(text: str, filename: str, expected: str | Collection[str] | None = None) -> BaseModel:
    """Any registered configuration type, or only those in `expected` (one type or several) when given."""
    return _validate(_parse_yaml(text, filename), filename, expected)


def load_settings_file(path: Path, model: type[ModelT], what: str) -> ModelT:
    """A settings file with no `type:` (the controller's config file): an empty file is all defaults."""
    filename = str(path)
    data = _parse_yaml(_read(path, what), filename)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{filename} must be a mapping of settings")
    try:
        return model.model_validate(_plain(data))
    except ValidationError as exc:
        raise _explain(exc, model, data, filename) from None


def _validate(data: Any, filename: str, expected: str | Collection[str] | None) -> BaseModel:
    if expected is None:
        wanted = sorted(CONFIGURATION_TYPES)
    else:
        wanted = [expected] if isinstance(expected, str) else sorted(expected)
    if not isinstance(data, dict) or "type" not in data:
        raise ConfigError(f"{filename} must be a mapping with type: {'|'.join(wanted)}")
    kind = data["type"]
    type_line = _key_line(data, "type")
    if not isinstance(kind, str) or kind not in CONFIGURATION_TYPES:
        raise ConfigError(
            f'unknown type "{kind}" in {filename} line {type_line} (expected one of: {", ".join(wanted)})',
            line=type_line,
            key="type",
        )
    if kind not in wanted:
        raise ConfigError(
            f"{filename} line {type_line} says type: {kind}, but a {' or '.join(wanted)} configuration is needed here",
            line=type_line,
            key="type",
        )
    model = CONFIGURATION_TYPES[kind]
    try:
        return model.model_validate(_plain(data))
    except ValidationError as exc:
        raise _explain(exc, model, data, filename) from None


def _read(path: Path, what: str) -> str:
    try:
        return read_limited(path, what)
    except InputRefused as exc:
        raise ConfigError(str(exc)) from None
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}") from None


def _parse_yaml(text: str, filename: str) -> Any:
    try:
        return load_yaml(text, filename)
    except InputRefused as exc:
        raise ConfigError(str(exc)) from None
    except MarkedYAMLError as exc:
        problem = exc.problem or "syntax error"
        # Some problems only make sense after their context ("expected a single document ... but found").
        if problem.startswith("but ") and exc.context:
            problem = f"{exc.context} {problem}"
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        where = f" (line {line})" if line is not None else ""
        raise ConfigError(f"{filename} is not valid YAML: {problem}{where}", line=line) from None
    except YAMLError as exc:
        raise ConfigError(f"{filename} is not valid YAML: {exc}") from None


def _plain(node: Any) -> Any:
    """ruamel's round-trip containers and scalar subclasses -> plain dict/list/str/int/float/bool."""
    if isinstance(node, dict):
        # `1: x` is an unknown key "1", not a type error about keys.
        return {str(_plain(k)): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, ScalarBoolean | bool):
        return bool(node)
    for kind in (str, int, float):
        if isinstance(node, kind):
            return kind(node)
    return node


def _explain(exc: ValidationError, model: type[BaseModel], data: Any, filename: str) -> ConfigError:
    errors = exc.errors(include_url=False)
    # An unknown key is usually a typo that also causes the other errors ("imgae" -> image missing).
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc: Loc = _untag(data, tuple(error["loc"]))
    node, found, line = _walk(data, loc)
    path = _dotted(found)
    at_line = f" line {line}" if line is not None else ""
    if error["type"] == "extra_forbidden":
        hint = _suggest(model, loc)
        hint_text = f' (did you mean "{_dotted((*loc[:-1], hint))}"?)' if hint else ""
        return ConfigError(f'unknown key "{path}" in {filename}{at_line}{hint_text}', line=line, key=path)
    if error["type"] == "missing":
        missing = _dotted(loc)
        return ConfigError(f'missing key "{missing}" in {filename}{at_line}', line=line, key=missing)
    why = _reason(error)
    if not found and len(loc) == 1 and isinstance(loc[0], str):
        # A key left out that another key makes necessary (`backend: local` needs `path`).
        return ConfigError(f'missing key "{loc[0]}" in {filename}: {why}', line=None, key=loc[0])
    if not found:
        return ConfigError(f"invalid {filename}: {why}", line=None, key=None)
    shown = f' "{_short(node)}"' if not isinstance(node, dict | list) else ""
    return ConfigError(f"invalid {path}{shown} in {filename}{at_line}: {why}", line=line, key=path)


def _untag(data: Any, loc: Loc) -> Loc:
    """Drops the tags pydantic puts in the locations of a union chosen by `type:`
    (backends[0].aws.region -> backends[0].region): the YAML has no such key."""
    node: Any = data
    kept: list[int | str] = []
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part not in node and str(node.get("type")) == part:
            continue
        kept.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(kept)


def _walk(data: Any, loc: Loc) -> tuple[Any, Loc, int | None]:
    """Follow `loc` through the YAML as far as it exists: (node, the part followed, its 1-based line).

    Errors inside a short form (`cpu: "arm:x"` failing at cpu.count) point below the YAML
    scalar; they are reported at that scalar, which is what the user wrote.
    """
    node: Any = data
    found: Loc = ()
    line: int | None = None
    for part in loc:
        if isinstance(node, dict):
            # Keys were turned into strings for validation; find the one as written.
            key = next((k for k in node if str(k) == part), _ABSENT)
            if key is _ABSENT:
                break
            line, node = _key_line(node, key), node[key]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            line, node = _item_line(node, part), node[part]
        else:
            break
        found = (*found, part)
    return node, found, line


def _key_line(mapping: Any, key: Any) -> int | None:
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return None


def _item_line(seq: Any, index: int) -> int | None:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def _dotted(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _short(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, bool) or value is None else str(value)
    text = text.replace("\n", "\\n")  # a block scalar must not break the one-line message
    return text if len(text) <= 60 else text[:57] + "..."


def _reason(error: ErrorDetails) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message[:1].lower() + message[1:]


def _suggest(model: type[BaseModel], loc: Loc) -> str | None:
    """The known key closest to the unknown last part of `loc`, from the model at that place."""
    owner = _model_at(model, loc[:-1])
    if owner is None:
        return None
    matches = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue  # list items: the model of the list's element is already current
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside `X`, `X | None`, `list[X]`, `Annotated[X, ...]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
