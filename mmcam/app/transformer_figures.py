"""`make run`'s transformer part: the bundled BLIP captioner on the bundled sample scenes.

For each sample, BLIP's caption with one map per word and the whole caption's map by every
attention method the captioner offers (relevance first, then raw attention, attention Grad-CAM,
rollout), drawn as `blip_caption_<n>.png`, and, for each "<colour> <shape>" the caption names,
whether each method's word map peaks inside that object's true box.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mmcam.app.sample_figures import read_samples, word_pointing
from mmcam.core.bundled import bundled_file
from mmcam.data.files import write_json
from mmcam.explainers.attention_stack import CaptionStackExplainer
from mmcam.explainers.hf import load_hf_captioner
from mmcam.methods import registry
from mmcam.visualize import PanelRow, map_grid

FIRST = "relevance"  # the method the transformer rows start with


def attention_methods() -> list[str]:
    """The attention methods the BLIP captioner's explainer runs, relevance first."""
    offered = CaptionStackExplainer.offered()
    return sorted(offered, key=lambda method: method != FIRST)


def write_transformer_figures(out: str | Path, samples: str | Path) -> list[dict]:
    """Write `blip_caption_<n>.png` per sample into `out`; return (and save as
    `transformer_summary.json`) each sample's caption, figure and word pointing."""
    out = Path(out)
    listing, pictures, shown = read_samples(samples)
    captioner = load_hf_captioner(str(bundled_file("blip_captioner")))
    images = torch.cat([captioner.preprocess(picture).pixel_values for picture in pictures])
    explainer = CaptionStackExplainer(captioner, captioner.attention_layout(), captioner.to_grid)
    captions = captioner.generate(images)
    names = {method: registry.get(method).name for method in attention_methods()}
    by_name = {
        name: explainer.explain(images, captions, method=method) for method, name in names.items()
    }
    pointing = [name for method, name in names.items() if registry.get(method).evidence]
    summary = []
    for index, sample in enumerate(listing):
        first = by_name[names[FIRST]]
        words = first.word_labels(index)
        rows = [
            PanelRow(
                name,
                [*result.words.maps[index, : len(words)], result.caption.maps[index]],
                [*words, "whole caption"],
            )
            for name, result in by_name.items()
        ]
        path = map_grid(
            shown[index], rows, out / f"blip_caption_{index + 1}.png", suptitle=first.texts[index]
        )
        summary.append(
            {
                "image": sample["file_name"],
                "caption": first.texts[index],
                "word_pointing": word_pointing(words, by_name, index, sample, pointing),
                "figure": str(path),
            }
        )
    write_json(out / "transformer_summary.json", summary)
    return summary
