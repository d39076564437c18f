"""`mmcam sanity` at its former path: same flags, same outputs (`--help` names them).
The command lives in `mmcam.cli.sanity`."""

import sys

from mmcam.cli.sanity import build_parser, main
from mmcam.runs.command_line import run_command

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_command(main))
