"""How an mmcam command ends: a refusal (bad input the user can fix) as one `error:` line and
exit status 2, a fault with its traceback. Kept apart from the subcommands so that `mmcam` and
every script load it without the libraries a subcommand needs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from mmcam.data.files import Refusal

__all__ = ["run_command"]


def run_command(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> int:
    """Run a script's `main(argv)` as a command and return its exit status. A `Refusal` (an
    output folder holding another run, a malformed annotation file, ...) prints `error:` and
    its message to stderr and returns 2, without a traceback (with `--debug` it propagates,
    traceback and all); any other exception is a fault and propagates with its traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        main(argv)
    except Refusal as refusal:
        if "--debug" in argv:
            raise
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    return 0
