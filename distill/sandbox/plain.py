"""Plain data across the sandbox boundary: the arguments of each call in, the value it returned out.

Plain data is None, bool, int, float, str, bytes and list / tuple / dict / set of these, recursively,
of exactly these types (no subclass). It travels as one JSON value per line; what JSON cannot tell
apart is tagged with an object of one key: {"tuple": [...]}, {"set": [...]}, {"dict": [[k, v], ...]},
{"bytes": "<hex>"}. Python's json keeps 1 and 1.0 apart and writes NaN and Infinity.

This file is standard library only and has no imports of the package, because its source is also
pasted into the program that runs in the sandbox (to read the arguments and write the values). What
that program writes is untrusted: only `decode` on the trusted side decides what a value is, and it
builds it from fresh objects of the exact types, whatever the bytes say.
"""

import json


class NotPlain(ValueError):
    """A value (or a line claiming to be one) that is not plain data."""


def encode(value):
    """`value` as one line of JSON; NotPlain for anything but plain data of the exact types."""
    try:
        return json.dumps(_tagged(value), ensure_ascii=True, separators=(",", ":"))
    except (ValueError, RecursionError, OverflowError) as exc:
        raise NotPlain(str(exc)) from None


def _tagged(value):
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        if kind is int:
            str(value)  # past Python's int-string limit: refused here, not in the reader
        return value
    if kind is list:
        return [_tagged(item) for item in value]
    if kind is tuple:
        return {"tuple": [_tagged(item) for item in value]}
    if kind is set:
        return {"set": [_tagged(item) for item in value]}
    if kind is dict:
        return {"dict": [[_tagged(k), _tagged(v)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    raise NotPlain(f"a {kind.__module__}.{kind.__qualname__}")


def decode(line):
    """The plain value one line of `encode` stands for; NotPlain for any other text."""
    try:
        return _untagged(json.loads(line, object_pairs_hook=_Pairs))
    except (ValueError, TypeError, RecursionError) as exc:  # TypeError: a list as a set item or key
        raise NotPlain(f"not plain data: {exc}") from None


class _Pairs(list):
    """A JSON object as the list of its (key, value) pairs: tags are checked, never guessed."""


def _untagged(raw):
    kind = type(raw)
    if raw is None or kind in (bool, int, float, str):
        return raw
    if kind is list:
        return [_untagged(item) for item in raw]
    if kind is _Pairs and len(raw) == 1:
        tag, body = raw[0]
        if tag == "bytes" and type(body) is str:
            return bytes.fromhex(body)
        if type(body) is list:
            if tag == "tuple":
                return tuple(_untagged(item) for item in body)
            if tag == "set":
                return {_untagged(item) for item in body}
            if tag == "dict" and all(type(pair) is list and len(pair) == 2 for pair in body):
                return {_untagged(k): _untagged(v) for k, v in body}
    raise NotPlain(f"unexpected {kind.__name__} in a value")
