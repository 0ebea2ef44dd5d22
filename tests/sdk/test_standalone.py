"""The SDK imports in an interpreter with no site-packages at all: the standard library only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import yibao_client
from yibao_client import InstitutionClient, UserClient, AdminClient, errors, signing, webhooks
foreign = sorted(
    m for m in sys.modules
    if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in ("yibao_client", "__main__")
)
assert not foreign, foreign
assert not any(m.split(".")[0] in ("yibao", "flask", "payments", "voucher") for m in sys.modules)
print("ok")
"""


def test_importable_without_the_server_dependencies():
    # -I: isolated (no env, no user site), -S: no site module, hence no site-packages on sys.path.
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHECK, str(ROOT)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_pytest_finds_the_package_at_the_repository_root():
    import yibao_client

    assert Path(yibao_client.__file__).resolve().parent == ROOT / "yibao_client"
