"""`python -m solopo.rehearsal build <name> <dir> [--seed N] [--size FIELD=N ...]`: write a rehearsal backbone folder."""
from __future__ import annotations

import argparse
import sys

from solopo.rehearsal import RehearsalError, rehearsal_model
from solopo.rehearsal.released import ALIASES


def _size(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep or not value.strip().isdigit():
        raise ValueError(f"--size {text!r}: expected FIELD=N, e.g. num_hidden_layers=4")
    return key.strip(), int(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m solopo.rehearsal")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write a small random-weight backbone with the released tokenizer and config")
    b.add_argument("name", help=f"backbone: {', '.join(ALIASES)} or its hub id")
    b.add_argument("out_dir")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--size", action="append", default=[], metavar="FIELD=N",
                   help="override a size of solopo.rehearsal.released.SMALL, e.g. num_hidden_layers=4")
    a = p.parse_args(argv)
    try:
        sizes = dict(_size(s) for s in a.size)
        rehearsal_model(a.name, a.out_dir, a.seed, sizes=sizes or None)
    except (ValueError, RehearsalError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(a.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
