"""The ``fastalign`` command: ``fastalign bench ...`` (see ``fastalign bench --help``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: fastalign bench [options]   (fastalign bench --help)\n\n"
            "  bench   fastalign beside TRL's code on this machine: times, speed-ups, GB/s, plots"
        )
        return 0
    if argv[0] == "bench":
        from .bench import main as bench

        return bench(argv[1:])
    print(f"fastalign: unknown command {argv[0]!r}; try 'fastalign bench --help'", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
