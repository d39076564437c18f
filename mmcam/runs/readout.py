"""How a dataset run's metrics are read: the short report a person reads (`report.txt`) and
the flat headline figures of the one JSON line scripts end with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmcam.runs.faithfulness import FAITHFULNESS_KEYS

__all__ = ["number_text", "report_text", "summary"]


def summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline figures of a run's metrics, flat, for the one JSON line scripts end with."""

    def pick(*path: str) -> Any:
        value: Any = metrics
        for key in path:
            if not isinstance(value, Mapping) or value.get(key) is None:
                return None
            value = value[key]
        return value

    task = _task(metrics)
    out: dict[str, Any] = {"task": metrics["task"], "images": metrics["images"]}
    out.update(task.summary(metrics))
    out["loc_accuracy"] = pick("loc_accuracy", "accuracy")
    out["loc_accuracy_threshold"] = pick("loc_accuracy", "threshold_accuracy")
    out["loc_accuracy_refined"] = pick("loc_accuracy", "refined_accuracy")
    out["loc_accuracy_refined_unflagged"] = pick("loc_accuracy", "refined_unflagged_accuracy")
    out["refined_flagged"] = pick("loc_accuracy", "refined_flagged")
    out["maxboxacc"] = pick("maxboxacc", "accuracy")
    out["pointing"] = pick("pointing", "accuracy")
    out["pointing_0px"] = pick("pointing_0px", "accuracy")
    for name in ("coco_ap", "coco_ap50", "coco_ap75", "corloc"):
        out[name] = metrics.get(name)
    for kind in ("threshold", "refined"):
        for name in ("coco_ap50", "corloc"):
            out[f"{name}_{kind}"] = metrics.get(f"boxes_{kind}", {}).get(name)
    for key in FAITHFULNESS_KEYS:
        for name in ("map", "random", "center"):
            out[f"{key}_{name}"] = pick(key, name)
    out["map_support"] = metrics.get("map_support")
    bad = metrics["bad_data"]
    out["failed_images"] = bad["failed_images"]["count"]
    out.update(task.bad_data_summary(bad))
    out["size_mismatches"] = bad.get("size_mismatch", {}).get("count", 0)
    return out


def number_text(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report_text(metrics: Mapping[str, Any]) -> str:
    """A short report of a run's metrics for a person to read."""
    where = f"at layer {metrics['layer']}" if metrics["layer"] else "in pixel space"
    blur = f", blurred by a Gaussian of sigma {metrics['smooth']:g} px" if metrics["smooth"] else ""
    lines = [f"maps: {metrics['method']} {where}{blur}"]
    task = _task(metrics)
    lines += task.report_lines(metrics)
    lines += _box_lines(metrics)
    lines += task.report_after_boxes(metrics)
    lines += _faithfulness_lines(metrics)
    lines += _bad_data_lines(metrics["bad_data"])
    return "\n".join(lines) + "\n"


_MEASURES = {
    "deletion_auc": ("deletion AUC", "lower"),
    "insertion_auc": ("insertion AUC", "higher"),
    "road_morf": ("ROAD most relevant first", "lower"),
    "road_lerf": ("ROAD least relevant first", "higher"),
}


def _faithfulness_lines(metrics: Mapping[str, Any]) -> list[str]:
    """The map beside the random map and the centre Gaussian, one line per measure."""
    found = {key: metrics.get(key) for key in _MEASURES if metrics.get(key)}
    if not found:
        return []
    method = metrics["method"]
    lines = [
        f"faithfulness ({method}'s maps: mean support {number_text(metrics.get('map_support'))} "
        "of the pixels non-zero):",
        f"  {'measure':<26} {'better':>6} {method[:12]:>12} {'random':>8} {'centre':>8}  items",
    ]
    for key, row in found.items():
        name, better = _MEASURES[key]
        lines.append(
            f"  {name:<26} {better:>6} {number_text(row['map']):>12} "
            f"{number_text(row.get('random')):>8} {number_text(row.get('center')):>8}  "
            f"{row['count']}"
        )
    curve = found.get("deletion_auc") or found.get("insertion_auc")
    if curve:
        lines.append(
            f"  deletion and insertion in {curve['steps']} steps, tied pixels in random orders "
            f"(mean of {curve['tie_orders']}); deletion to the zero input, insertion from the "
            "blurred image"
        )
    road = found.get("road_morf") or found.get("road_lerf")
    if road:
        shares = ", ".join(f"{r:g}" for r in road["fractions"])
        lines.append(
            f"  ROAD: mean change of the score with {shares} of the pixels removed and "
            "imputed (noisy linear imputation)"
        )
    return lines


def _tolerance_text(pointing: Mapping[str, Any]) -> str:
    if pointing["tolerance"] is not None:
        return f"tolerance {pointing['tolerance']:g} px"
    mean = pointing["mean_tolerance_px"]
    size = "" if mean is None else f", {mean:.1f} px on average"
    return f"tolerance {pointing['tolerance_rule']}{size}"


def _box_lines(metrics: Mapping[str, Any]) -> list[str]:
    located, best, pointing = metrics["loc_accuracy"], metrics["maxboxacc"], metrics["pointing"]
    if not located:
        return ["box metrics: no instances file given"]
    exact = metrics["pointing_0px"]
    lines = [
        f"maps scored against ground truth: {located['count']}",
        f"pointing game ({_tolerance_text(pointing)}): "
        f"{number_text(pointing['accuracy'])} ({pointing['hits']} / {pointing['count']})",
        f"pointing game at 0 px (peak inside the box): {number_text(exact['accuracy'])} "
        f"({exact['hits']} / {exact['count']})",
        f"localisation accuracy (IoU >= 0.5) at box threshold {located['threshold']:g}: "
        f"{number_text(located.get('threshold_accuracy'))}; refined (map + image): "
        f"{number_text(located.get('refined_accuracy'))}",
        *_flagged_lines(located),
        "  threshold " + " ".join(f"{k:>5}" for k in located["sweep"]),
        "  accuracy  " + " ".join(f"{number_text(v, 2):>5}" for v in located["sweep"].values()),
        f"MaxBoxAcc (thresholds 0.00-0.99, step 0.01): {number_text(best['accuracy'])} "
        f"at {best['threshold']:g}",
        f"  {'category':<16} {'maps':>5} {'pointing':>9} {'at 0 px':>8} {'loc acc':>8} "
        f"{'no object':>10}",
    ]
    for name, row in metrics["per_category"].items():
        lines.append(
            f"  {name:<16} {row['count']:>5} {number_text(row['pointing']):>9} "
            f"{number_text(row['pointing_0px']):>8} {number_text(row['loc_accuracy']):>8} "
            f"{row['unmatched']:>10}"
        )
    if "coco_ap" in metrics:
        counts = metrics["box_detection"]
        lines += [
            f"boxes_results.json by pycocotools COCOeval over the named image-category pairs "
            f"({counts['named_pairs']} pairs, {counts['boxes']} boxes, {counts['objects']} "
            "objects):",
            f"  AP {number_text(metrics['coco_ap'])}  AP50 {number_text(metrics['coco_ap50'])}"
            f"  AP75 {number_text(metrics['coco_ap75'])}",
            f"CorLoc (top box of each named pair holding the object, IoU >= 0.5): "
            f"{number_text(metrics['corloc'])} ({counts['corloc_hits']} / "
            f"{counts['pairs_with_objects']})",
        ]
        for kind, name in (("threshold", "the map's own boxes"), ("refined", "refined boxes")):
            if f"boxes_{kind}" in metrics:
                scores = metrics[f"boxes_{kind}"]
                lines.append(
                    f"  {name}: AP {number_text(scores['coco_ap'])}  AP50 "
                    f"{number_text(scores['coco_ap50'])}  CorLoc {number_text(scores['corloc'])}"
                )
    return lines


def _flagged_lines(located: Mapping[str, Any]) -> list[str]:
    """The refined boxes flagged as guesses and the accuracy without them (records of layout 3)."""
    if "refined_flagged" not in located:
        return []
    flags = ", ".join(f"{name} {count}" for name, count in located["refined_flags"].items())
    return [
        f"refined boxes flagged as guesses: {located['refined_flagged']} of {located['count']} "
        f"({flags}); refined accuracy without them: "
        f"{number_text(located['refined_unflagged_accuracy'])} "
        f"({located['refined_unflagged_count']} maps), of them: "
        f"{number_text(located['refined_flagged_accuracy'])}"
    ]


def _bad_data_lines(bad: Mapping[str, Any]) -> list[str]:
    failed = bad["failed_images"]
    lines = [f"unreadable images (skipped): {failed['count']}"]
    lines += [f"  {image_id}: {error}" for image_id, error in failed["errors"].items()]
    for mode, row in bad["converted_to_rgb"].items():
        lines.append(f"converted to RGB from {mode}: {row['count']} {row['ids']}")
    unknown = bad.get("unknown_images", {"count": 0})
    if unknown["count"]:
        lines.append(
            f"captions of images missing from the captions file's 'images' (skipped): "
            f"{unknown['captions']}, image ids {unknown['ids']}"
        )
    resized = bad.get("size_mismatch", {"count": 0})
    if resized["count"]:
        lines.append(
            f"images whose size differs from their annotation's (explained at the file's size, "
            f"not scored against the annotation's boxes): {resized['count']}"
        )
        for image_id, sizes in resized["sizes"].items():
            (fh, fw), (ah, aw) = sizes["file"], sizes["annotation"]
            lines.append(f"  {image_id}: file {fw}x{fh}, annotation {aw}x{ah}")
    if "empty_captions" in bad and bad["empty_captions"]["count"]:
        row = bad["empty_captions"]
        lines.append(f"empty captions: {row['count']} {row['ids']}")
    if "skipped_questions" in bad:
        row = bad["skipped_questions"]
        lines.append(f"questions skipped: {row['count']}")
        lines += [f"  {qid}: {reason}" for qid, reason in row["reasons"].items()]
    return lines


# ----------------------------------------------------------------------------- the tasks' lines


def _task(metrics: Mapping[str, Any]) -> Any:
    """The `Task` whose run wrote `metrics` (imported here: the tasks' modules import this one)."""
    from mmcam.runs.tasks import get

    return get(metrics["task"])


def caption_summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A captions run's headline figures (`summary`)."""
    out = {name: metrics[name] for name in ("bleu4", "meteor", "rouge_l", "cider", "spice")}
    pointing = metrics.get("word_pointing") or {}
    out["nltk_bleu4"] = (metrics.get("nltk_bleu") or {}).get("bleu4")
    out["word_pointing"] = pointing.get("accuracy")
    out["word_pointing_0px"] = pointing.get("accuracy_0px")
    return out


def vqa_summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A VQA run's headline figures (`summary`)."""
    return {"questions": metrics["questions"], "vqa_accuracy": metrics["vqa_accuracy"]}


def caption_report_lines(metrics: Mapping[str, Any]) -> list[str]:
    """A captions run's lines of the report above the boxes."""
    lines: list[str] = []
    lines.append(f"captions: {metrics['images']} images, {metrics['captioned']} captioned")
    bleu = metrics["bleu"]
    if bleu:
        lines += [
            f"COCO caption metrics (pycocoevalcap, PTB tokens, all references, "
            f"{metrics['scored_captions']} captions):",
            "  BLEU-1..4 "
            + "  ".join(number_text(bleu[f"bleu{n}"]) for n in range(1, 5))
            + f"  METEOR {number_text(metrics['meteor'])}  ROUGE-L "
            f"{number_text(metrics['rouge_l'])}  CIDEr-D {number_text(metrics['cider'])}",
            f"  SPICE unavailable: {metrics['spice_unavailable']}",
            "nltk corpus BLEU-1..4 (mmcam's tokens): "
            + "  ".join(number_text(metrics["nltk_bleu"][f"bleu{n}"]) for n in range(1, 5)),
        ]
    lines.append(f"words naming a category: {metrics['category_words']}")
    pointing = metrics["word_pointing"]
    if pointing:
        lines.append(
            f"word pointing (peak in that object's box, {_tolerance_text(pointing)}; words "
            f"with no such object are misses): {number_text(pointing['accuracy'])} "
            f"({pointing['hits']} / {pointing['words']}, {pointing['unmatched']} with no "
            f"such object); at 0 px: {number_text(pointing['accuracy_0px'])} "
            f"({pointing['hits_0px']} / {pointing['words']})"
        )
    return lines


def vqa_report_lines(metrics: Mapping[str, Any]) -> list[str]:
    """A VQA run's lines of the report above the boxes."""
    lines: list[str] = []
    lines.append(
        f"VQA: {metrics['questions']} questions on {metrics['images']} images, "
        f"{metrics['answered']} answered"
    )
    if metrics["vqa_accuracy"] is not None:
        lines.append(
            f"VQA accuracy: {number_text(metrics['vqa_accuracy'])} (answered questions only: "
            f"{number_text(metrics['vqa_accuracy_answered'])})"
        )
        for name, value in sorted(metrics["vqa_accuracy_per_answer_type"].items()):
            lines.append(f"  {name:<12} {number_text(value)}")
    lines.append(f"questions naming a category: {metrics['questions_naming_a_category']}")
    return lines


def vqa_pointing_lines(metrics: Mapping[str, Any]) -> list[str]:
    """A VQA run's pointing game by question type, below the boxes."""
    lines: list[str] = []
    if metrics["pointing_by_question_type"]:
        lines.append("pointing by question type:")
        lines.append(f"  {'question type':<24} {'scaled':>6} {'0 px':>6}  questions")
        for name, row in metrics["pointing_by_question_type"].items():
            lines.append(
                f"  {name:<24} {number_text(row['accuracy']):>6} "
                f"{number_text(row['accuracy_0px']):>6}  {row['count']}"
            )
    return lines


def caption_bad_data(bad: Mapping[str, Any]) -> dict[str, Any]:
    """A captions run's count of bad data beside the failed images (`summary`)."""
    return {"unknown_images": bad.get("unknown_images", {}).get("count", 0)}


def vqa_bad_data(bad: Mapping[str, Any]) -> dict[str, Any]:
    """A VQA run's count of bad data beside the failed images (`summary`)."""
    return {"skipped_questions": bad["skipped_questions"]["count"]}
