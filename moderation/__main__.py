"""The `moderation` command (and `python -m moderation`).

Loading the command's modules takes a quarter of a second; Ctrl-C in that time exits 130 with one line, as it does
once the command runs, instead of a traceback from whichever import it interrupted. (Before this module runs,
Python itself starts, a few tens of milliseconds that no handler of ours can cover.)
"""

import sys


def main() -> None:
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("moderation: error: interrupted", file=sys.stderr)
        sys.exit(130)  # cli.EXIT_INTERRUPTED, which may not be loaded yet
    run()


if __name__ == "__main__":
    main()
