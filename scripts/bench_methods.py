"""Pixel-method speed: mmcam's occlusion and guided backprop vs Captum's, in one run.

torchvision resnet18 (random seeded weights, in-place ReLUs), CPU. Occlusion: the same window,
stride, fill and forward batch on both sides (Captum's `perturbations_per_eval` = P means P
window positions x B images per forward; mmcam's `batch_size` is given P x B). Guided backprop:
a different class per image, one forward and one backward on both sides. Both results are
checked equal to Captum's (1e-5) before timing. A third pair times occlusion on a one-conv net,
where the forward is nearly free, to show the cost of each side's own machinery. One torch thread
by default: on a small shared machine, two threads under load make timings swing by 2x.
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torchvision
from captum.attr import GuidedBackprop, Occlusion
from torch import nn

from mmcam.core.targets import ClassLogit
from mmcam.methods.perturbation import occlusion
from mmcam.methods.pixel_space import guided_backprop
from mmcam.runs.benchmarking import report, time_side_by_side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=2, help="images per batch")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--window", type=int, default=8, help="occlusion window side")
    parser.add_argument("--stride", type=int, default=4, help="occlusion stride")
    parser.add_argument("--per-eval", type=int, default=32, help="window positions per forward")
    parser.add_argument("--gb-batch", type=int, default=8, help="images for guided backprop")
    parser.add_argument("--gb-size", type=int, default=112, help="image side for guided backprop")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per contender")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="captum")  # its hook warnings on every call

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    images = torch.randn(args.batch, 3, args.size, args.size)
    classes = [(7 * index) % 1000 for index in range(args.batch)]
    gb_images = torch.randn(args.gb_batch, 3, args.gb_size, args.gb_size)
    gb_classes = [(11 * index) % 1000 for index in range(args.gb_batch)]
    window, stride = args.window, args.stride
    captum_occlusion, captum_guided = Occlusion(model), GuidedBackprop(model)

    def ours_occlusion() -> torch.Tensor:
        rows = args.per_eval * args.batch  # the same forward batch as Captum's
        return occlusion(model, images, ClassLogit(classes), window, stride, 0.0, rows).raw

    def theirs_occlusion() -> torch.Tensor:
        shape, step = (3, window, window), (3, stride, stride)
        return captum_occlusion.attribute(
            images, shape, step, 0.0, classes, perturbations_per_eval=args.per_eval
        )

    def ours_guided() -> torch.Tensor:
        return guided_backprop(model, gb_images, ClassLogit(gb_classes)).raw

    def theirs_guided() -> torch.Tensor:
        return captum_guided.attribute(gb_images, target=gb_classes)

    # The methods' own machinery: the same occlusion on a one-conv net whose forward is nearly free.
    small = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 10)).eval()  # fmt: skip
    small_classes = [index % 10 for index in range(args.batch)]
    captum_small = Occlusion(small)

    def ours_small() -> torch.Tensor:
        rows = args.per_eval * args.batch
        return occlusion(small, images, ClassLogit(small_classes), window, stride, 0.0, rows).raw

    def theirs_small() -> torch.Tensor:
        shape, step = (3, window, window), (3, stride, stride)
        return captum_small.attribute(
            images, shape, step, 0.0, small_classes, perturbations_per_eval=args.per_eval
        )

    pairs = [(ours_occlusion, theirs_occlusion), (ours_guided, theirs_guided)]
    for ours, theirs in [*pairs, (ours_small, theirs_small)]:
        expected = theirs()
        scale = float(expected.abs().max())
        torch.testing.assert_close(ours(), expected, rtol=1e-5, atol=1e-5 * scale)

    times = time_side_by_side(
        {
            "mmcam occlusion": ours_occlusion,
            "Captum Occlusion": theirs_occlusion,
            "mmcam guided backprop": ours_guided,
            "Captum GuidedBackprop": theirs_guided,
            "mmcam occlusion, 1-conv net": ours_small,
            "Captum Occlusion, 1-conv net": theirs_small,
        },
        repeats=args.repeats,
        warmup=1,
    )
    positions = (-(-(args.size - window) // stride) + 1) ** 2
    print(
        f"resnet18, occlusion: {args.batch} x {args.size}px, window {window}, stride {stride}, "
        f"{positions} positions, {args.per_eval} per forward; guided backprop: "
        f"{args.gb_batch} x {args.gb_size}px; {args.threads} threads"
    )
    report(
        times,
        {
            "occlusion_speedup_vs_captum": times["Captum Occlusion"] / times["mmcam occlusion"],
            "guided_backprop_speedup_vs_captum": times["Captum GuidedBackprop"]
            / times["mmcam guided backprop"],
            "occlusion_overhead_speedup_vs_captum": times["Captum Occlusion, 1-conv net"]
            / times["mmcam occlusion, 1-conv net"],
        },
        args.out,
    )


if __name__ == "__main__":
    main()
