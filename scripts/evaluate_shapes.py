"""Evaluate the captioner and the VQA model on a shapes split (issue #3's targets).

Runs the same code as scripts/explain_captions.py and scripts/explain_vqa.py (one run each,
into OUT/captions and OUT/vqa, resumable), then reports:

    vqa_accuracy         official VQA accuracy of the top answers                   (>= 0.90)
    bleu4, meteor, rouge_l, cider
                         COCO caption metrics (pycocoevalcap; CIDEr-D) of the captions
                         against all references                          (BLEU-4 >= 0.60)
    word_pointing_0px    each generated word naming a shape: the peak of its map lies in the
                         box of the ground-truth object of that colour and kind; words with
                         no such object are misses (and counted)                    (>= 0.85)
    answer_pointing_0px  "what color is the <shape>?": the answer map's peak lies in the
                         queried shape's box                                        (>= 0.85)
    word_pointing, answer_pointing
                         the same at the pointing tolerance (default 15/224 of the shorter
                         side: 8.6 px on the 128 px scenes)
    captions / vqa       COCO AP, AP50 and CorLoc of each run's boxes (pycocotools)

Choose on val (the default split), report on test: `--split test`. The data comes from
scripts/make_shapes.py (default data/shapes). Prints a table, writes OUT/metrics.json, and
ends with one JSON line holding the figures and each run's summary line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmcam.cli.dataset_options import add_run_arguments
from mmcam.cli.exit_status import run_command
from mmcam.cli.options import add_limit, add_out, add_root, add_split
from mmcam.data.files import write_json
from mmcam.runs import tasks
from mmcam.runs.captions import explain_captions
from mmcam.runs.command_line import chosen_method, options_from_arguments
from mmcam.runs.inputs import read_split
from mmcam.runs.models import load_run_captioner, load_run_vqa, run_device
from mmcam.runs.readout import summary
from mmcam.runs.vqa import explain_vqa
from mmcam.studies.shapes_report import shapes_evaluation, shapes_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_root(parser, "the shapes data")
    add_split(parser, help="val to choose on, test to report (default: %(default)s)")
    add_limit(parser)
    parser.add_argument(
        "--captioner", help="captioner folder (default: the bundled models/captioner)"
    )
    parser.add_argument("--vqa", help="VQA model folder (default: the bundled models/vqa)")
    parser.add_argument(
        "--max-length", type=int, default=20, help="longest caption in words (default: 20)"
    )
    parser.add_argument(
        "--beam-size", type=int, default=1, help="caption beam size, 1: greedy (default: 1)"
    )
    parser.add_argument(
        "--top-k", type=int, default=3, help="answers mapped per question (default: 3)"
    )
    add_out(parser, "out/evaluate_shapes", "captions/, vqa/ (the runs) and metrics.json")
    add_run_arguments(parser, deletion=0, road=())
    return parser


def main(argv: list[str] | None = None) -> dict | None:
    args = build_parser().parse_args(argv)
    out, device = Path(args.out), run_device(args.device)
    captioner = load_run_captioner(args.captioner, device=device, layer=args.layer)
    vqa_model = load_run_vqa(args.vqa, device=device, layer=args.layer)
    captioner, vqa_model = chosen_method(args, captioner), chosen_method(args, vqa_model)
    options = options_from_arguments(args)
    data = read_split(args.root, args.split, args.limit)
    captions = explain_captions(captioner, data["captions"], out / "captions", options)
    vqa = explain_vqa(vqa_model, data["vqa"], out / "vqa", options)
    if captions is None or vqa is None:  # a torchrun rank other than 0
        return None
    figures = shapes_evaluation(captions.metrics, vqa.metrics)
    write_json(out / "metrics.json", figures)
    print(shapes_table(figures), end="")
    print(f"details in {out}/captions and {out}/vqa (report.txt, metrics.json)")
    line = {
        "split": args.split,
        **{name: value for name, value in figures.items() if name not in tasks.ids()},
        "captions": summary(captions.metrics),
        "vqa": summary(vqa.metrics),
    }
    line.pop("counts")
    print(json.dumps(line))
    return line


if __name__ == "__main__":
    sys.exit(run_command(main))
