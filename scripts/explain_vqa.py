"""`mmcam explain-vqa` at its former path: same flags, same outputs (`--help` names them).
The command lives in `mmcam.cli.explain_vqa`."""

import sys

from mmcam.cli.explain_vqa import build_parser, main
from mmcam.runs.command_line import run_command

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_command(main))
