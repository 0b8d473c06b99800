"""Command-line flags built from an options dataclass, so each default and help text is written once.

The idea of transformers' ``HfArgumentParser`` (which TRL's parser extends), written here because importing
transformers costs seconds at every ``deepmedix`` start. A field becomes ``--field-name``; its ``metadata`` may give
``help``, ``flag`` (another name), ``choices``, ``metavar`` or ``skip`` (not a flag). Types: str, int, float, Path,
bool (``--x`` / ``--no-x``), ``X | None``, ``Literal[...]`` and ``StrEnum`` (choices), ``list[X]`` (``nargs="+"``).
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")
_METAVARS = {str: "TEXT", int: "N", float: "X", Path: "PATH"}


def _flag(field: dataclasses.Field[Any]) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def _unwrap_optional(tp: Any) -> Any:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None
) -> None:
    """Add one flag per init field of dataclass ``cls`` to ``parser`` (``defaults`` overrides field defaults)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.init or field.name in exclude or field.metadata.get("skip"):
            continue
        tp = _unwrap_optional(hints[field.name])
        kwargs: dict[str, Any] = {"dest": field.name, "help": field.metadata.get("help")}
        if field.default is not dataclasses.MISSING:
            kwargs["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        else:
            kwargs["required"] = True
        if defaults and field.name in defaults:
            kwargs["default"] = defaults[field.name]
        if "metavar" in field.metadata:
            kwargs["metavar"] = field.metadata["metavar"]
        if tp is bool:
            kwargs.pop("required", None)
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(tp) is Literal:
            kwargs["choices"] = list(get_args(tp))
            kwargs["type"] = type(get_args(tp)[0])
        elif isinstance(tp, type) and issubclass(tp, enum.Enum):
            kwargs["choices"] = [m.value for m in tp]
            kwargs["type"] = tp
        elif get_origin(tp) in (list, tuple):
            kwargs["nargs"] = "+"
            kwargs["type"] = get_args(tp)[0]
        elif tp in (str, int, float, Path):
            kwargs["type"] = tp
            kwargs.setdefault("metavar", _METAVARS[tp])
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: no command-line form for {tp!r}")
        if "choices" in field.metadata:
            kwargs["choices"] = field.metadata["choices"]
        parser.add_argument(_flag(field), **kwargs)


def dataclass_from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """The dataclass ``cls`` from the parsed flags that :func:`add_dataclass_arguments` added (plus ``overrides``)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if f.init and hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)


__all__ = ["add_dataclass_arguments", "dataclass_from_args"]


def check_port(host: str, port: int) -> None:
    """Fail at once, before a model is loaded, when a server's ``--host``/``--port`` cannot be bound (the port is
    taken, or the address is not this machine's): an ``OSError`` naming ``host:port``. Bound as uvicorn binds it
    (SO_REUSEADDR), then released."""
    import socket  # only the servers need it

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise OSError(e.errno, e.strerror, f"{host}:{port}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            raise OSError(e.errno, e.strerror, f"{host}:{port}") from None
