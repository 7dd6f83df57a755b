"""``tinyattn`` console command. Subcommands: ``grade`` (the grader, see ``tinyattn grade --help``)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: tinyattn grade [--impl exercises|solutions] [chNN ...]\n"
              "       python -m tinyattn.grading --help   for every option")
        return 0 if argv else 2
    if argv[0] == "grade":
        from .grading.__main__ import main as grade
        return grade(argv[1:])
    print(f"tinyattn: unknown command {argv[0]!r} (try: tinyattn grade)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
