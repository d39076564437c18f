"""`mmcam compare-boxes` at its former path: same flags, same outputs (`--help` names them).
The command lives in `mmcam.cli.compare_boxes`."""

import sys

from mmcam.cli.compare_boxes import build_parser, main
from mmcam.cli.exit_status import run_command

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(run_command(main))
