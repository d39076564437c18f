"""`mmcam explain-captions` at its former path: same flags, same outputs (`--help` names them).
The command lives in `mmcam.cli.explain_captions`."""

import sys

from mmcam.cli.exit_status import run_command
from mmcam.cli.explain_captions import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_command(main))
