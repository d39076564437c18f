"""Grad-CAM speed: mmcam vs the plain forward pass, pytorch-grad-cam and Captum, in one run.

torchvision resnet18 (random seeded weights), batch 8, 224x224, CPU, explaining layer4.
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from captum.attr import LayerGradCam
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from mmcam.cli.options import add_benchmark
from mmcam.core.targets import ClassLogit
from mmcam.methods.cam import explain
from mmcam.studies.benchmarking import report, time_side_by_side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8, help="images per batch")
    parser.add_argument("--size", type=int, default=224, help="image side in pixels")
    add_benchmark(parser, repeats=10, threads=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    images = torch.randn(args.batch, 3, args.size, args.size)
    classes = list(range(args.batch))
    anchor = GradCAM(model=model, target_layers=[model.layer4])
    captum = LayerGradCam(model, model.layer4)

    def plain_forward():
        with torch.no_grad():
            model(images)

    def pytorch_grad_cam():
        anchor(images, targets=[ClassifierOutputTarget(c) for c in classes])

    times = time_side_by_side(
        {
            "forward (no grad)": plain_forward,
            "mmcam Grad-CAM": lambda: explain(model, images, ClassLogit(classes), "layer4"),
            "pytorch-grad-cam GradCAM": pytorch_grad_cam,
            "Captum LayerGradCam": lambda: captum.attribute(images, target=classes),
        },
        repeats=args.repeats,
    )
    anchor.activations_and_grads.release()
    ours = times["mmcam Grad-CAM"]
    report(
        times,
        {
            "vs_forward": ours / times["forward (no grad)"],
            "speedup_vs_pytorch_grad_cam": times["pytorch-grad-cam GradCAM"] / ours,
            "speedup_vs_captum": times["Captum LayerGradCam"] / ours,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
