"""`python -m harness merge OUT SHARD_DIR ...`: see `harness.merge`."""

from __future__ import annotations

import sys

COMMANDS = ("merge",)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m harness {{{','.join(COMMANDS)}}} ...  (received: {' '.join(argv) or 'nothing'})")
        return 2
    from harness import merge

    return merge.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
