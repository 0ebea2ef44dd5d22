"""Run the benchmarks: `python -m bench` (all) or `python -m bench voucher payments`."""

from __future__ import annotations

import importlib
import sys
import time

SUITES = ("voucher", "payments")


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    started = time.time()
    for name in names:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            print(f"bench {name}: not available ({exc})")
            continue
        print(f"\n######## bench {name} ########", flush=True)
        module.main()
    print(f"\nbenchmarks finished in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
