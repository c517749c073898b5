"""Stage configs: dataclasses whose fields are at once the Python API, the CLI
flags and the YAML recipe schema.

A config class is a `@dataclass(kw_only=True)` with a docstring line under each
field (the CLI's help text is read from there) and its checks in
`__post_init__`. Values are merged as dataclass defaults < YAML recipe < --set KEY=VALUE
and --unset KEY < flags given on the command line; an unknown YAML key is an error naming the key.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import itertools
import json
import math
import re
import textwrap
import types
import typing
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from distill.errors import ConfigError

C = TypeVar("C")

# Every config field declares how it takes part in resuming (distill.runs): `field(..., metadata=MUST_MATCH)`
# when a resumed run with another value must be refused, `metadata=FREE` when it may change.
MUST_MATCH = {"resume": "must-match"}
FREE = {"resume": "free"}


@dataclasses.dataclass(kw_only=True)
class Options:
    """Base of every config and option group: each `__post_init__` calls super()'s,
    so a config that inherits several groups runs every group's checks."""

    def __post_init__(self) -> None:
        # no option of any stage means anything as nan or inf (an --lr inf trains a nan model, an
        # --accuracy-weight nan poisons every advantage, an --epochs inf never plans a step)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name, None)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{flag(f.name)} must be a finite number (got {value})")


def flag(name: str) -> str:
    """The command-line flag of a config field: `max_tokens` -> `--max-tokens`."""
    return "--" + name.replace("_", "-")


def require(condition: bool, name: str, message: str) -> None:
    """Raise a ConfigError naming the flag of `name` unless `condition` holds."""
    if not condition:
        raise ConfigError(f"{flag(name)} {message}")


def one_of(value: str, name: str, choices: typing.Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{flag(name)} must be one of {', '.join(choices)} (got {value!r})")


def field_docs(cls: type) -> dict[str, str]:
    """The help of each field: the docstring written under it, or where its text is derived from
    something else (a registry), `field(metadata={"doc": function})`'s, read at each call."""
    derived = {f.name: f.metadata["doc"]() for f in (dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ())
               if callable(f.metadata.get("doc"))}
    return {**_source_docs(cls), **derived}


@cache
def _source_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field, read from the class sources (base classes too)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def required_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)
            if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return "a list of strings"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            type(None): "null"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any) -> Any:
    """Return `value` as type `tp`, or raise TypeError. Lists of strings also accept 'a,b'."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except TypeError:
                pass
        raise TypeError
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError
        return list(value) if origin is list else tuple(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict):  # a JSON-object option (--vllm-args, --chat-template-kwargs) as a YAML mapping
            return json.dumps(value)
        raise TypeError
    if tp is Any:
        return value
    raise TypeError


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}; fix the YAML syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the recipe as UTF-8") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of option: value, got {type(data).__name__}")
    return data


def build_config(cls: type[C], *, yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                 set_values: Sequence[str] = (), unset: Sequence[str] = ()) -> C:
    """Merge defaults < YAML recipe < `set_values` and `unset` < `overrides` (flags given on the command
    line) into `cls`.

    `overrides` holds only the flags the user actually gave (None means "not given"). `set_values` are
    'key=value' (--set: any key, its value written as in the recipe, null for none) and `unset` keys
    (--unset: back to the default): a recipe adapted from the command line, keys no flag can unset included.
    """
    types_ = field_types(cls)
    values: dict[str, Any] = {}
    if yaml_path is not None:
        for key, value in read_yaml(yaml_path).items():
            name = str(key).replace("-", "_")
            if name not in types_:
                raise ConfigError(f"{yaml_path}: unknown key '{key}'{_did_you_mean(name, types_)}")
            try:
                values[name] = _coerce(value, types_[name])
            except TypeError:
                raise ConfigError(f"{yaml_path}: key '{key}' must be {_type_name(types_[name])}, "
                                  f"got {value!r}") from None
    adapted: dict[str, str] = {}  # field -> how the command line set or unset it
    for spec in set_values:
        key, sep, text = spec.partition("=")
        name = key.strip().replace("-", "_")
        if not sep or name not in types_:
            raise ConfigError(f"--set {spec}: " + (f"unknown option '{key}'{_did_you_mean(name, types_)}" if sep else
                              "give KEY=VALUE, e.g. --set max_model_len=8192 (--unset KEY removes a recipe's value)"))
        try:
            values[name] = _from_text(text, types_[name])
        except TypeError:
            raise ConfigError(f"--set {spec}: '{name}' must be {_type_name(types_[name])}") from None
        adapted[name] = f"--set {spec}"
    for key in unset:
        name = key.strip().replace("-", "_")
        if name not in types_:
            raise ConfigError(f"--unset {key}: unknown option{_did_you_mean(name, types_)}")
        if name in required_fields(cls):
            raise ConfigError(f"--unset {key}: {flag(name)} is required, so it has no default to go back to; give "
                              f"it a value with {flag(name)}")
        values.pop(name, None)
        adapted[name] = f"--unset {key}"
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in types_:
            raise ConfigError(f"unknown option {flag(name)}")
        if name in adapted:
            raise ConfigError(f"{adapted[name]} and {flag(name)} both give {name}; keep one")
        try:
            values[name] = _coerce(value, types_[name])
        except TypeError:
            raise ConfigError(f"{flag(name)} must be {_type_name(types_[name])}, got {value!r}") from None
    missing = [name for name in required_fields(cls) if name not in values]
    if missing:
        name = missing[0]
        raise ConfigError(f"missing required option {flag(name)} (or '{name}:' in the --config YAML)")
    return cls(**values)


def _did_you_mean(name: str, names: typing.Iterable[str]) -> str:
    names = list(names)
    # a plural or singular of a real name first ('models' -> 'model', not the as-close 'modes')
    number = [other for other in names if other in (name.removesuffix("s"), f"{name}s")]
    close = number or difflib.get_close_matches(name, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _from_text(text: str, tp: Any) -> Any:
    """A --set value, read as the recipe would read it ('8192', 'null', 'true', 'a,b'); a text field keeps
    the text as given ('--set system=42' is the string '42'). TypeError when it cannot be of type `tp`."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = text
    try:
        return _coerce(parsed, tp)
    except TypeError:
        if parsed is None:
            raise
        return _coerce(text, tp)


def recipe_hint(message: str, recipe: str | Path, given: typing.Collection[str]) -> str:
    """`message` with every 'drop --x' whose value came from the `recipe` (and not from a flag in `given`,
    field names) saying how to drop it: remove the key from the recipe, or --unset it."""
    if not _DROP.search(message):
        return message
    try:
        keys = {str(key).replace("-", "_"): str(key) for key in read_yaml(recipe)}
    except ConfigError:
        return message

    def how(match: re.Match[str]) -> str:
        name = match.group(1).replace("-", "_")
        if name not in keys or name in given:
            return match.group(0)
        return f"remove '{keys[name]}:' from {recipe} or pass --unset {name}"

    return _DROP.sub(how, message)


_DROP = re.compile(r"drop --([a-z0-9][a-z0-9-]*)")
"""How every error that asks to leave an option out says it ("drop --liger"): recipe_hint rewrites it."""


def config_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config, for summaries and model cards."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def project(cls: type[C], source: Any, **values: Any) -> C:
    """`cls` built from the option groups it shares with config `source`, plus `values`.

    A field counts as shared only when both inherit it from the same group (dataclasses hand a
    subclass its base's very field objects), so fields that merely share a name, like two stages'
    `out`, are never carried over.
    """
    inherited = set(dataclasses.fields(source))
    shared = {f.name: getattr(source, f.name) for f in dataclasses.fields(cls) if f in inherited and f.init}
    return cls(**{**shared, **values})
