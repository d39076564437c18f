"""`python -m mmcam.cli COMMAND ...` is `mmcam COMMAND ...` (torchrun: `-m mmcam.cli`)."""

import sys

from mmcam.cli import main

if __name__ == "__main__":
    sys.exit(main())
