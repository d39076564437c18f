"""The files that ship inside the package: the bundled checkpoints and their model cards, the
box settings table chosen on val, and the sample scenes.

They live in `mmcam/bundled/` (the repository's top-level `models/` is a link to it), so an
installed mmcam finds them wherever it is installed, and no code reads a path outside the
package.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUNDLED", "bundled_file"]

BUNDLED = Path(__file__).resolve().parent.parent / "bundled"


def bundled_file(*parts: str) -> Path:
    """The path of a bundled file or folder (`bundled_file("captioner")`), or a clear error
    naming what is there when it is missing (an installation without its package data)."""
    path = BUNDLED.joinpath(*parts)
    if not path.exists():
        there = sorted(p.name for p in BUNDLED.iterdir()) if BUNDLED.is_dir() else []
        raise FileNotFoundError(
            f"{'/'.join(parts)} is not among the files bundled with mmcam in {BUNDLED} "
            f"(there: {', '.join(there) or 'nothing'}); reinstall mmcam with its package data"
        )
    return path
