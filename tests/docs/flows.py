"""Runs the ```sh blocks of the documentation in one bash process and checks what the comments promise.

Conventions (docs/development.md, "Documentation flows"):
* a fence with info string `sh` is executed; `text`, `console`, `python`, `json`… are not;
* `# -> STATUS [CODE] [{...}]` after a command: the last curl call answered STATUS (and problem `code` CODE),
  and every `"field": literal` shown is in its JSON body (a value containing `...`/`…`, or written `~value`
  because it varies, such as a countdown, is not checked);
* `# => VALUE` after a command: what the commands printed since the previous comment of these two kinds (or
  the block start) is VALUE: JSON compared as JSON (objects: the fields shown), else the last printed line;
* every curl call is recorded: a 5xx (or no answer) stops the run, a 4xx fails unless a `# ->` names it.
Comment lines that follow a `# ->` / `# =>` line and start with `#` and two spaces continue it.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`\s]*)\s*$")
EXPECT = re.compile(r"^\s*# (?P<kind>->|=>)(?: (?P<text>.*))?$")
CONTINUED = re.compile(r"^\s*#  \s*(?P<text>\S.*)$")
PAIR = re.compile(
    r'"(?P<key>[A-Za-z_][A-Za-z0-9_]*)"\s*:\s*(?P<value>"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null)'
)
STATUS = re.compile(r"^(?P<status>[1-5]\d\d)\b\s*(?P<code>[A-Z][A-Z0-9_]+\b)?")
ELLIPSIS = ("...", "…")
RUN_INFO = "sh"


@dataclass
class Block:
    doc: str
    line: int  # 1-based line of the opening fence
    info: str
    lines: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def blocks(path: Path, name: str) -> list[Block]:
    """Every fenced block of a Markdown file, dedented to its fence."""
    found: list[Block] = []
    current: Block | None = None
    indent = ""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = FENCE.match(line)
        if current is None and m:
            indent = m["indent"]
            current = Block(name, n, m["info"])
        elif current is not None and m and m["info"] == "" and len(m["indent"]) <= len(indent) + 3:
            found.append(current)
            current = None
        elif current is not None:
            current.lines.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
    if current is not None:
        raise ValueError(f"{name}:{current.line}: unclosed fence")
    return found


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def instrument(block: Block) -> list[str]:
    """The block's lines with a check call after every expectation comment."""
    out = [f"__yb_block {block.where}"]
    lines = block.lines
    i = 0
    while i < len(lines):
        out.append(lines[i])
        m = EXPECT.match(lines[i])
        if not m:
            i += 1
            continue
        text = [m["text"] or ""]
        while i + 1 < len(lines) and (c := CONTINUED.match(lines[i + 1])) and not EXPECT.match(lines[i + 1]):
            i += 1
            out.append(lines[i])
            text.append(c["text"])
        call = "__yb_expect_status" if m["kind"] == "->" else "__yb_expect_out"
        out.append(f"{call} {_b64(' '.join(text).strip())} {block.line + 1 + i}")
        i += 1
    return out


PRELUDE = r"""
set -euo pipefail
__yb_log() { printf '%s\n' "$*" >> "$YB_DOCS_LOG"; }
curl() {  # the real curl, recording each answer's status and body
  local body status rc=0
  body=$(mktemp "$YB_DOCS_TMP/body.XXXXXX")
  status=$(command curl "$@" -o "$body" -w '%{http_code}') || rc=$?
  cat "$body"
  if [[ -n $(tail -c1 "$body") ]]; then echo; fi  # end the line, as a terminal would
  __yb_log "call $status $body"
  if [[ $rc -ne 0 || $status == 000 || $status == 5* ]]; then
    echo "curl answered HTTP $status (curl exit $rc): curl $*" >&2
    return 1
  fi
}
__YB_OUT_FROM=0
__yb_block() { __yb_log "block $1"; __YB_OUT_FROM=$(stat -c %s "$YB_DOCS_OUT"); }
__yb_expect_status() { __yb_log "status $1 $2"; __YB_OUT_FROM=$(stat -c %s "$YB_DOCS_OUT"); }
__yb_expect_out() {
  local end; end=$(stat -c %s "$YB_DOCS_OUT")
  __yb_log "out $1 $2 $__YB_OUT_FROM $end"; __YB_OUT_FROM=$end
}
"""


def script(docs: list[tuple[str, Path]]) -> str:
    parts = [PRELUDE]
    for name, path in docs:
        for block in blocks(path, name):
            if block.info == RUN_INFO:
                parts.append("\n".join(instrument(block)))
    parts.append("__yb_log done")
    return "\n".join(parts) + "\n"


def _contains(body: object, key: str, value: object) -> bool:
    if isinstance(body, dict):
        if key in body and body[key] == value:
            return True
        return any(_contains(v, key, value) for v in body.values())
    if isinstance(body, list):
        return any(_contains(v, key, value) for v in body)
    return False


def _pairs(text: str) -> list[tuple[str, object]]:
    return [
        (m["key"], json.loads(m["value"]))
        for m in PAIR.finditer(text)
        if not any(e in m["value"] for e in ELLIPSIS)
    ]


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _check_fields(expected: str, body: object, where: str) -> list[str]:
    return [
        f"{where}: expected {key} = {json.dumps(value, ensure_ascii=False)}, got "
        f"{json.dumps(body, ensure_ascii=False)[:600]}"
        for key, value in _pairs(expected)
        if not _contains(body, key, value)
    ]


def verify(log: str, stdout: bytes) -> tuple[list[str], list[str]]:
    """(problems, blocks reached) from the runner's log and the shell's standard output."""
    problems: list[str] = []
    reached: list[str] = []
    block = "?"
    last: tuple[str, str] | None = None  # status, body file of the latest curl
    acknowledged = True
    done = False

    def unexpected() -> None:
        if last and not acknowledged and last[0].startswith("4"):
            body = Path(last[1]).read_text(errors="replace")[:600]
            problems.append(f"{block}: HTTP {last[0]} without a '# -> {last[0]}' comment: {body}")

    for entry in log.splitlines():
        kind, _, rest = entry.partition(" ")
        if kind == "block":
            unexpected()
            last, acknowledged, block = None, True, rest
            reached.append(rest)
        elif kind == "call":
            unexpected()
            status, body_file = rest.split(" ", 1)
            last, acknowledged = (status, body_file), False
        elif kind == "status":
            b64, line = rest.split(" ")
            expected = base64.b64decode(b64).decode()
            where = f"{block.split(':')[0]}:{line}"
            m = STATUS.match(expected)
            if m is None:
                problems.append(f"{where}: '# -> {expected}' does not start with an HTTP status")
                continue
            if last is None:
                problems.append(f"{where}: '# -> {expected}' follows no curl call")
                continue
            acknowledged = True
            body = _json(Path(last[1]).read_text(errors="replace"))
            if last[0] != m["status"]:
                problems.append(f"{where}: expected HTTP {m['status']}, got {last[0]}: {body}")
                continue
            if m["code"] and not (isinstance(body, dict) and body.get("code") == m["code"]):
                problems.append(f"{where}: expected code {m['code']}, got {body}")
            problems += _check_fields(expected[m.end() :], body, where)
        elif kind == "out":
            b64, line, start, end = rest.split(" ")
            expected = base64.b64decode(b64).decode().strip()
            where = f"{block.split(':')[0]}:{line}"
            printed = stdout[int(start) : int(end)].decode(errors="replace").strip()
            lines = [x.strip() for x in printed.splitlines() if x.strip()]
            got = lines[-1] if lines else ""
            want = _json(expected)
            if isinstance(want, dict) or (want is None and _pairs(expected)):
                body = _json(printed)
                problems += _check_fields(expected, body if body is not None else _json(got), where)
            elif want is not None:
                if _json(got) != want:
                    problems.append(f"{where}: expected output {expected}, got {printed[-600:]!r}")
            elif got != expected:
                problems.append(f"{where}: expected output {expected!r}, got {printed[-600:]!r}")
        elif kind == "done":
            done = True
    unexpected()
    if not done:
        problems.append(f"the run stopped in block {block}")
    return problems, reached
