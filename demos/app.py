"""The mmcam demo as a script: `python demos/app.py` is `mmcam demo` (same flags). The page is
`mmcam.app.page` (`build`, `launch`), the command `mmcam.cli.demo`.

    python demos/app.py                      # http://127.0.0.1:7860, the bundled checkpoints
    python demos/app.py --port 8000 --host ADDRESS   # opt-in: serve on a network address
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported

from mmcam.app.page import build, launch  # noqa: E402
from mmcam.cli.demo import build_parser, main  # noqa: E402

__all__ = ["build", "build_parser", "launch", "main"]

if __name__ == "__main__":
    main()
