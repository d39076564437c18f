"""Importing mmcam changes no global state of the importing program: not its matplotlib backend,
torch's threads or flags, the warning filters or the logging configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Third-party libraries are imported before the "before" snapshot, so a change they make on
# import is not blamed on mmcam; then every mmcam module is imported.
PROBE = """
import json, logging, pkgutil, warnings, importlib
import matplotlib, torch, torchvision, numpy, PIL, scipy.ndimage, scipy.stats, gradio, transformers

def state():
    return {
        "backend": matplotlib.get_backend(),
        "threads": torch.get_num_threads(),
        "grad": torch.is_grad_enabled(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "default_dtype": str(torch.get_default_dtype()),
        "warning_filters": len(warnings.filters),
        "root_handlers": len(logging.getLogger().handlers),
        "root_level": logging.getLogger().level,
    }

before = state()
import mmcam
for module in pkgutil.walk_packages(mmcam.__path__, "mmcam."):
    importlib.import_module(module.name)
print(json.dumps({"before": before, "after": state()}))
"""


def test_importing_every_mmcam_module_leaves_global_state_as_it_was():
    environment = {**os.environ, "MPLBACKEND": "pdf", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=environment, check=True
    )
    states = json.loads(done.stdout.strip().splitlines()[-1])
    assert states["before"]["backend"] == "pdf"
    assert states["after"] == states["before"]
