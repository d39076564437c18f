"""`mmcam train-vqa` at its former path: same flags, same outputs (`--help` names them).
The command lives in `mmcam.cli.train_vqa`."""

import sys

from mmcam.cli.exit_status import run_command
from mmcam.cli.train_vqa import build_parser, main, parse_args

__all__ = ["build_parser", "main", "parse_args"]

if __name__ == "__main__":
    sys.exit(run_command(main))
