"""What a sanity check reports: a table of similarity against randomised depth per method, the
figure of Adebayo et al. (similarity against depth, one line per method), grids of maps as the
layers are randomised, and the JSON figures."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from torch import Tensor

from mmcam.evaluation.map_similarity import MapSimilarity
from mmcam.studies.sanity import SanityResult
from mmcam.studies.sanity_boxes import BoxSanity
from mmcam.visualize import PanelRow, map_grid, new_figure, save_figure


def _cell(similarity: MapSimilarity, measure: str) -> str:
    """A mean as text; "flat" when every pair was flat, and the flat share when some were."""
    means = similarity.means()
    if means[measure] is None:
        return "flat"
    flat = f" ({means['flat']:.0%} flat)" if means["flat"] else ""
    return f"{means[measure]:+.3f}{flat}"


def similarity_table(result: SanityResult, order: str, measure: str = "spearman") -> str:
    """One line per randomisation step (output layer first), one column per method: the mean
    `measure` between the trained model's maps and the randomised model's."""
    methods = list(result.trained_maps)
    width = max(len(step) for step in result.steps) + 2
    lines = [f"{order} randomisation, mean {measure} with the trained model's maps"]
    lines.append("randomised".ljust(width) + "".join(f"{m:>18}" for m in methods))
    for step in result.steps:
        cells = [_cell(result.similarity[order][step][m], measure) for m in methods]
        shown = step if order == "independent" else f"..{step}"
        lines.append(shown.ljust(width) + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines) + "\n"


def result_metrics(result: SanityResult) -> dict:
    """Every step's mean of every measure (None when all pairs were flat) and flat share."""
    return {
        "layers": result.layers,
        **{
            order: {
                step: {method: s.means() for method, s in by_method.items()}
                for step, by_method in steps.items()
            }
            for order, steps in result.similarity.items()
        },
    }


def box_table(result: BoxSanity) -> str:
    """The default boxes' accuracy from the trained and the randomised models, and the verdict."""
    lines = [
        f"default boxes ({result.method} at {result.layer}, {result.count} maps naming an object): "
        "localisation accuracy (IoU >= 0.5), boxes flagged as guesses"
    ]
    for step in ["trained", *result.steps]:
        shown = step if step == "trained" else f"..{step} random"
        verdict = ""
        if step != "trained":
            fell = "fell" if result.depends(step) else "did not fall"
            verdict = f"  ({fell}: needs a drop over {result.drop_needed(step):.3f})"
        lines.append(
            f"  {shown:<28} {result.accuracy[step]:.3f}  flagged {result.flagged[step]}{verdict}"
        )
    last = result.steps[-1]
    lines.append(
        f"  the boxes depend on the model: they fall with the layers down to {last} random"
        if result.depends_on_model
        else f"  the boxes do NOT depend on the model: they stay as accurate with the layers down "
        f"to {last} random"
    )
    return "\n".join(lines) + "\n"


def full_randomization(result: SanityResult, measure: str = "spearman") -> dict[str, float | None]:
    """Each method's mean `measure` once every layer is randomised (the last cascading step)."""
    last = result.similarity["cascading"][result.layers[0]]
    return {method: s.means()[measure] for method, s in last.items()}


def plot_curves(results: dict[str, SanityResult], path: str | Path) -> Path:
    """Similarity against randomised depth, one line per method: a row per task, columns for
    cascading (Spearman of absolute maps, SSIM) and independent (Spearman of absolute maps)."""
    panels = [("cascading", "spearman_abs"), ("cascading", "ssim"), ("independent", "spearman_abs")]
    figure, axes = new_figure(len(results), len(panels), (5.2 * len(panels), 3.8 * len(results)))
    for row, (task, result) in enumerate(results.items()):
        for column, (order, measure) in enumerate(panels):
            axis = axes[row, column]
            names = ["trained", *result.steps]
            for method in result.trained_maps:
                values = [1.0, *result.curve(order, method, measure)]
                axis.plot(range(len(names)), [float("nan") if v is None else v for v in values],
                          marker="o", markersize=3, label=method)  # fmt: skip
            axis.set_xticks(range(len(names)), names, rotation=75, fontsize=6)
            axis.set_ylim(-0.4, 1.05)
            axis.axhline(0.0, color="grey", linewidth=0.5)
            axis.set_title(f"{task}: {order}, {measure}", fontsize=9)
    axes[0, -1].legend(fontsize=7, loc="lower left")
    return save_figure(figure, path)


def map_grids(
    result: SanityResult,
    images: Sequence[Image.Image],
    titles: Sequence[str],
    out: str | Path,
    task: str,
    columns: int = 6,
) -> list[Path]:
    """A figure per kept row: its image, then per method the trained map and the maps after
    cascading randomisation down to a few depths (|map| scaled by its maximum)."""
    steps = result.steps
    shown = [steps[round(i * (len(steps) - 1) / max(columns - 1, 1))] for i in range(columns)]
    shown = list(dict.fromkeys(shown))
    kept = result.randomized_maps["cascading"]
    paths = []
    for index, (image, title) in enumerate(zip(images, titles, strict=True)):
        rows = []
        for method, trained in result.trained_maps.items():
            maps = [trained[result.kept_rows[index]]]
            maps += [kept[step][method][index] for step in shown]
            rows.append(PanelRow(method, [_scaled(m) for m in maps],
                                 ["trained", *(f"..{s}" for s in shown)]))  # fmt: skip
        size = tuple(maps[0].shape[-2:])
        path = Path(out) / f"sanity_{task}_{index + 1}.png"
        paths.append(map_grid(image.resize(size[::-1]), rows, path, suptitle=title))
    return paths


def _scaled(heat: Tensor) -> Tensor:
    """|map| divided by its maximum (a flat zero map stays zero)."""
    magnitude = heat.abs()
    peak = magnitude.max()
    return magnitude / peak if peak > 0 else magnitude
