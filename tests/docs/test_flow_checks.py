"""The checker of the documentation flows refuses what the documents do not promise (no server needed)."""

from __future__ import annotations

import base64
from pathlib import Path

from tests.docs import flows


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _log(tmp_path: Path, *entries: tuple) -> str:
    lines = ["block docs/x.md:1"]
    for n, entry in enumerate(entries):
        if entry[0] == "call":
            body = tmp_path / f"body{n}"
            body.write_text(entry[2])
            lines.append(f"call {entry[1]} {body}")
        elif entry[0] == "status":
            lines.append(f"status {_b64(entry[1])} 9")
        else:  # out: text, start, end
            lines.append(f"out {_b64(entry[1])} 9 {entry[2]} {entry[3]}")
    return "\n".join([*lines, "done"])


def test_status_code_and_fields_are_checked(tmp_path):
    ok = _log(
        tmp_path, ("call", "201", '{"status": "pending", "n": 3}'), ("status", '201 {"status": "pending"}')
    )
    assert flows.verify(ok, b"") == ([], ["docs/x.md:1"])
    wrong_status = _log(tmp_path, ("call", "200", "{}"), ("status", "201"))
    assert "expected HTTP 201, got 200" in flows.verify(wrong_status, b"")[0][0]
    wrong_field = _log(
        tmp_path, ("call", "201", '{"status": "active"}'), ("status", '201 {"status": "pending"}')
    )
    assert 'expected status = "pending"' in flows.verify(wrong_field, b"")[0][0]
    varying = _log(
        tmp_path, ("call", "200", '{"ttl": 59, "id": "x1"}'), ("status", '200 {"ttl": ~60, "id": "x…"}')
    )
    assert flows.verify(varying, b"")[0] == []
    code = _log(tmp_path, ("call", "409", '{"code": "B"}'), ("status", "409 CODE_A"))
    assert "expected code CODE_A" in flows.verify(code, b"")[0][0]


def test_a_4xx_needs_a_comment_and_a_5xx_or_a_stop_fails(tmp_path):
    problems, _ = flows.verify(_log(tmp_path, ("call", "404", "{}"), ("call", "200", "{}")), b"")
    assert problems and "HTTP 404 without" in problems[0]
    problems, _ = flows.verify(_log(tmp_path, ("call", "422", "{}")), b"")
    assert problems and "HTTP 422 without" in problems[0]
    stopped = "block docs/x.md:1\ncall 200 /dev/null"
    assert "the run stopped in block docs/x.md:1" in flows.verify(stopped, b"")[0]


def test_printed_output_is_checked(tmp_path):
    out = b'{"a":1,"b":"x"}\n0\n["e","e"]\n'
    log = _log(tmp_path, ("out", '{"a": 1, ...}', 0, 16), ("out", "0", 16, 18), ("out", '["e", "e"]', 18, 28))
    assert flows.verify(log, out)[0] == []
    log = _log(tmp_path, ("out", '{"a": 2}', 0, 16), ("out", "1", 16, 18))
    assert len(flows.verify(log, out)[0]) == 2


def test_expectations_are_instrumented_with_continuation_lines():
    block = flows.Block(
        "docs/x.md", 10, "sh", ["curl -s $YB/x", "# -> 201 {", '#    "a": 1}', "echo hi", "# => hi"]
    )
    lines = flows.instrument(block)
    assert lines[0] == "__yb_block docs/x.md:10"
    assert lines[4].startswith("__yb_expect_status " + _b64('201 { "a": 1}'))
    assert lines[-1].startswith("__yb_expect_out " + _b64("hi"))
