"""A lean start for `edgeclf camera` and `edgeclf classify` (issue 14: the camera's memory).

typer 0.29 coerces every option through a pydantic TypeAdapter that it builds when it parses: pydantic and
the adapters of `camera`'s 48 options cost about 10 MB of peak RSS, in a process that needs about 64 MB to
classify at all. When the command line is plain -- global -v/-q, then `camera` or `classify`, known
`--long` options each given once, values that are plainly numbers, paths or text -- this module reads it
with the same definitions (the typer signatures in `edgeclf.cli.edge`, as `edgeclf.cli.lean_table` holds them)
and calls the same command body (`edgeclf.cli.edge_run`) with the same error handling
(`edgeclf.cli.settings.guarded`), in a process that imports no typer (about 1.5 MB of peak RSS less).
Anything else (--help, --version, `--`, `-x` short options, a value that starts with `-`, a repeated single
option, an unknown option, a value typer would refuse or convert in a way this module does not model) is left
to typer, which answers as it always did: the interface is typer's.
tests/edge/test_cli_lean.py checks that both give the command the same arguments and answer the same;
tests/edge/test_camera_imports.py that a plain camera/classify process imports neither pydantic nor typer.
"""

from __future__ import annotations

import errno
import inspect
import os
import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

LEAN_COMMANDS = ("camera", "classify")
_INT = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
# OptionInfo/ArgumentInfo attributes this parser reproduces; any other one set to a non-default value
# (a callback, min/max, count, a parser, path checks, prompts, ...) makes the command typer's alone.
_MODELLED = {"default", "param_decls", "help", "metavar", "envvar", "show_default", "show_envvar",
             "rich_help_panel", "hidden"}


class NotPlain(Exception):
    """This command line (or command) is typer's to parse."""


@dataclass(frozen=True)
class Param:
    name: str  # the Python parameter
    kind: type  # str, int, float, Path or bool
    multiple: bool  # List[...]: repeatable option, or the variadic argument
    argument: bool
    on: tuple[str, ...]  # option names (bool: those that set True)
    off: tuple[str, ...]  # bool: those that set False
    envvar: str | None
    default: Any
    required: bool


def params_of(fn: Callable[..., Any]) -> list[Param]:
    """The parameters of a typer command function, or NotPlain if one uses a feature not modelled here."""
    import typer.models

    hints = typing.get_type_hints(fn, include_extras=True)
    out = []
    for name, p in inspect.signature(fn).parameters.items():
        ann = hints[name]
        if typing.get_origin(ann) is not typing.Annotated:
            raise NotPlain(f"{name}: not Annotated")
        base, *meta = typing.get_args(ann)
        infos = [m for m in meta if isinstance(m, typer.models.ParameterInfo)]
        if len(infos) != 1:
            raise NotPlain(f"{name}: {len(infos)} typer infos")
        info = infos[0]
        fresh = vars(type(info)())
        odd = sorted(k for k, v in vars(info).items() if k not in _MODELLED and fresh.get(k, v) != v)
        if odd:
            raise NotPlain(f"{name}: {', '.join(odd)}")
        base = _strip_optional(base)
        multiple = typing.get_origin(base) is list
        if multiple:
            (base,) = typing.get_args(base)
        if base not in (str, int, float, Path, bool) or (multiple and base is bool):
            raise NotPlain(f"{name}: type {base}")
        argument = isinstance(info, typer.models.ArgumentInfo)
        decls = [info.default] if isinstance(info.default, str) and info.default.startswith("-") else []
        decls += list(info.param_decls or ())
        on, off = [], []
        for d in decls or [f"--{name.replace('_', '-')}"]:
            yes, _, no = d.partition("/")
            if not yes.startswith("--") or (no and base is not bool) or " " in d:
                raise NotPlain(f"{name}: option name {d!r}")
            on.append(yes.strip())
            if no:
                off.append(no.strip())
        envvar = info.envvar
        if envvar is not None and not isinstance(envvar, str):
            raise NotPlain(f"{name}: several envvars")
        required = p.default is inspect.Parameter.empty
        out.append(Param(name, base, multiple, argument, tuple(on), tuple(off), envvar,
                         None if required else p.default, required))
    return out


def _strip_optional(t: Any) -> Any:
    if typing.get_origin(t) is typing.Union:
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        raise NotPlain(f"union {t}")
    return t


def _value(p: Param, text: str) -> Any:
    """The value typer would pass for this text, or NotPlain where it might differ (or refuse it)."""
    if p.kind is str:
        return text
    if p.kind is int and _INT.fullmatch(text):
        return int(text)
    if p.kind is float and _FLOAT.fullmatch(text):
        return float(text)
    if p.kind is Path and text not in ("", "-"):
        try:
            os.stat(text)
        except (OSError, ValueError):
            return Path(text)
        if os.access(text, os.R_OK):  # typer refuses an unreadable existing path: its message, not ours
            return Path(text)
    raise NotPlain(f"{p.name}: {text!r}")


def parse(argv: Sequence[str], params: dict[str, list[Param]]) -> tuple[str, int, bool, dict[str, Any]]:
    """(command, verbose, quiet, keyword arguments) of a plain command line; NotPlain otherwise."""
    verbose, quiet, i = 0, False, 0
    while i < len(argv) and argv[i].startswith("-"):
        t = argv[i]
        if t == "--verbose" or re.fullmatch(r"-v+", t):
            verbose += 1 if t == "--verbose" else len(t) - 1
        elif t in ("-q", "--quiet"):
            quiet = True
        else:
            raise NotPlain(t)
        i += 1
    if i >= len(argv) or argv[i] not in params:
        raise NotPlain("not a lean command")
    command, spec, args = argv[i], params[argv[i]], list(argv[i + 1:])
    by_name = {n: p for p in spec if not p.argument for n in p.on + p.off}
    given: dict[str, Any] = {}
    positional: list[str] = []
    j = 0
    while j < len(args):
        t = args[j]
        if t.startswith("-") and t != "-":
            name, eq, text = t.partition("=")
            p = by_name.get(name)
            if p is None:
                raise NotPlain(name)
            if p.kind is bool:
                if eq:
                    raise NotPlain(t)
                value: Any = name in p.on
            else:
                if not eq:
                    j += 1
                    if j >= len(args) or args[j].startswith("-"):
                        raise NotPlain(f"{name}: no plain value")
                    text = args[j]
                value = _value(p, text)
            if p.multiple:
                given.setdefault(p.name, []).append(value)
            elif p.name in given:
                raise NotPlain(f"{name} given twice")
            else:
                given[p.name] = value
        else:
            positional.append(t)
        j += 1
    kwargs: dict[str, Any] = {}
    for p in spec:
        if p.argument:
            if p.multiple:
                if not positional and p.required:
                    raise NotPlain(f"{p.name}: missing")
                kwargs[p.name] = [_value(p, t) for t in positional]
                positional = []
            else:
                if not positional:
                    raise NotPlain(f"{p.name}: missing")
                kwargs[p.name] = _value(p, positional.pop(0))
        elif p.name in given:
            kwargs[p.name] = given[p.name]
        elif p.envvar is not None and p.envvar in os.environ:
            text = os.environ[p.envvar]
            if not text or p.multiple:
                raise NotPlain(f"${p.envvar}")
            kwargs[p.name] = _value(p, text)
        elif p.required:
            raise NotPlain(f"{p.name}: missing")
        else:
            kwargs[p.name] = p.default
    if positional:
        raise NotPlain(f"extra arguments {positional}")
    return command, verbose, quiet, kwargs


def lean_params() -> dict[str, list[Param]]:
    """camera's and classify's parameters: the typer definitions as `params_of` reads them, from
    `edgeclf.cli.lean_table` (no typer import)."""
    from .lean_table import TABLE

    return {name: [Param(*row) for row in TABLE[name]] for name in LEAN_COMMANDS}


def typer_params() -> dict[str, list[Param]]:
    """The same, read from the typer definitions themselves (what the table must equal)."""
    from . import edge

    return {name: params_of(getattr(edge, name)) for name in LEAN_COMMANDS}


def table_source(params: dict[str, list[Param]]) -> str:
    """The body of edgeclf/cli/lean_table.py's TABLE for these parameters."""
    import json

    kinds = {str: "str", int: "int", float: "float", bool: "bool", Path: "Path"}

    def lit(v: Any) -> str:  # str as JSON (valid Python, double quotes), tuples of them, the rest as repr
        if isinstance(v, tuple):
            return "(" + ", ".join(map(lit, v)) + ("," if len(v) == 1 else "") + ")"
        return json.dumps(v) if isinstance(v, str) else repr(v)

    lines = ["TABLE = {"]
    for command, spec in params.items():
        lines.append(f'    "{command}": (')
        lines += [f"        ({lit(p.name)}, {kinds[p.kind]}, {p.multiple}, {p.argument}, {lit(p.on)}, {lit(p.off)}, "
                  f"{lit(p.envvar)}, {lit(p.default)}, {p.required})," for p in spec]
        lines.append("    ),")
    return "\n".join(lines + ["}"]) + "\n"


def run(argv: Sequence[str]) -> bool:
    """Run a plain camera/classify command line and exit; False (nothing done) for typer to take it."""
    if not argv or not any(a in LEAN_COMMANDS for a in argv[:4]):
        return False
    try:
        command, verbose, quiet, kwargs = parse(argv, lean_params())
    except Exception:  # noqa: BLE001  NotPlain, or definitions this module cannot read: typer's (always right) way
        return False
    from .edge_run import camera_command, classify_command
    from .settings import configure, guarded

    configure(verbose, quiet)  # what the typer app's global options do
    try:
        guarded(camera_command if command == "camera" else classify_command, **kwargs)  # the commands' own wrapper
    except OSError as e:  # as click does: a closed pipe (`edgeclf classify ... | head`) is exit 1, not a traceback
        if e.errno != errno.EPIPE:
            raise
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the interpreter's final flush goes nowhere)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    print(table_source(typer_params()), end="")
