"""The one way edgeclf starts a Python child that runs one of its own modules.

`python -m edgeclf.x` puts the current directory first on `sys.path`, so a folder named `edgeclf` (or
`numpy`, ...) in the directory where a command was started would be imported, and run, instead of the
installed package. `-I` would prevent that but also drops PYTHONPATH and the user site, and `-P` exists on
Python >= 3.11 only (and the bench starts other venvs' Pythons, whose version is unknown). So the child
runs a tiny `-c` program, the same on 3.9-3.12: drop the entry `-c` put first (the current directory;
none when PYTHONSAFEPATH/-P is in force), then run the module as `__main__` with `runpy`.
"""

from __future__ import annotations

import sys

BOOT = ("import sys, runpy\n"
        "if not getattr(sys.flags, 'safe_path', False) and sys.path and sys.path[0] in ('', '.'):\n"
        "    del sys.path[0]\n"
        "module = sys.argv.pop(1)\n"
        "runpy.run_module(module, run_name='__main__', alter_sys=True)\n")


def module_argv(module: str, *args: str, python: str | None = None) -> list[str]:
    """argv that runs `python -m module args...` without importing anything from the current directory."""
    return [python or sys.executable, "-c", BOOT, module, *args]
