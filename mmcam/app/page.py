"""The demo's page: caption an image and see where each word came from; ask a question and see
the evidence for (and against) the answer. A Gradio page over `mmcam.app.Demo`, which does all
the work; this module only lays the page out and launches it (`mmcam demo` and
`python demos/app.py` serve it). Importing it needs the `demo` extra (gradio)."""

from __future__ import annotations

import socket
from collections.abc import Callable

from mmcam.app import (
    DEFAULT_SAMPLES,
    MAX_IMAGE_SIDE,
    WHOLE_CAPTION,
    Demo,
    Example,
    InputError,
    box_text,
    bundled_examples,
)
from mmcam.app.inputs import MAX_UPLOAD
from mmcam.core.extras import require

gr = require("gradio", "demo", "The demo")

INTRO = """# mmcam: what did the model look at?
Grad-CAM and friends for the bundled captioner and VQA model (trained on the synthetic *shapes*
scenes; they see 128 x 128), or the Hugging Face models given with `--hf-captioner` /
`--hf-vqa`. Images larger than {side} pixels a side (or {upload}) are refused. Boxes are
COCO `[x, y, w, h]` in the pixels of your image."""


def shown_errors(function: Callable) -> Callable:
    """`function` with `InputError` turned into a message shown in the page."""

    def run(*args: object) -> object:
        try:
            return function(*args)
        except InputError as error:
            raise gr.Error(str(error), print_exception=False) from None

    return run


def input_image(elem_id: str) -> gr.Image:
    return gr.Image(
        type="filepath",
        label="Image",
        sources=["upload", "clipboard"],
        height=300,
        elem_id=elem_id,
    )


def output_image(label: str, height: int, elem_id: str) -> gr.Image:
    return gr.Image(label=label, format="png", interactive=False, height=height, elem_id=elem_id)


def downloads(label: str) -> gr.File:
    return gr.File(label=label, file_count="multiple", interactive=False)


def build(demo: Demo, examples: list[Example] | None = None) -> gr.Blocks:
    """The page: a captioning tab and a VQA tab over `demo`, with `examples` to pick from
    (default: the bundled samples)."""
    examples = bundled_examples() if examples is None else examples

    def caption(
        image: dict | None, method: str, word: str | None, threshold: float, refine: bool = True
    ) -> tuple:
        result = demo.caption(image, method, word, threshold, refine)
        return (
            result.caption,
            gr.Dropdown(choices=result.choices, value=result.selected),
            str(result.heat_map_file),
            box_text(result.boxes),
            [(str(path), label) for path, label in result.gallery],
            [str(path) for path in result.files],
        )

    def recaption(
        image: dict | None, method: str, word: str | None, threshold: float, refine: bool = True
    ) -> tuple:
        if image is None:  # a setting changed before any image was given: nothing to redo
            return tuple(gr.skip() for _ in range(6))
        return caption(image, method, word, threshold, refine)

    def answer(
        image: dict | None,
        question: str,
        method: str,
        chosen: str | None,
        threshold: float,
        refine: bool = True,
    ) -> tuple:
        result = demo.answer(image, question, method, chosen, threshold, refine=refine)
        return (
            result.answers,
            gr.Dropdown(choices=result.choices, value=result.selected),
            str(result.heat_map_file),
            str(result.counterfactual_file),
            box_text(result.boxes),
            result.notes,
            [str(path) for path in result.files],
            result.question_relevance,
        )

    def reanswer(
        image: dict | None,
        question: str,
        method: str,
        chosen: str | None,
        threshold: float,
        refine: bool = True,
    ) -> tuple:
        if image is None or not (question or "").strip():
            return tuple(gr.skip() for _ in range(8))
        return answer(image, question, method, chosen, threshold, refine)

    def map_controls(task: str) -> tuple[gr.Radio, gr.Slider, gr.Checkbox]:
        """The method (the default chosen), the box threshold (the default method's) and the
        refinement toggle (on) of one tab."""
        method = gr.Radio(
            demo.choices(task), value=demo.default.method, label="Method",
            info=demo.layers_note(task),
        )  # fmt: skip
        threshold = gr.Slider(
            0, 0.9, value=demo.default_threshold, step=0.05,
            label="Box threshold (fraction of the map's peak)",
        )  # fmt: skip
        refine = gr.Checkbox(
            value=True,
            label="Refined box (green): map + image, the map seeds a segmentation of the image",
        )
        return method, threshold, refine

    # delete_cache: Gradio's copies of the outputs are removed after an hour (and at restart).
    with gr.Blocks(title="mmcam demo", delete_cache=(3600, 3600)) as page:
        gr.Markdown(INTRO.format(side=MAX_IMAGE_SIDE, upload=MAX_UPLOAD))
        with gr.Tab("Captioning", id="captioning"):
            with gr.Row():
                with gr.Column(scale=2):
                    c_image = input_image("caption-image")
                    c_method, c_threshold, c_refine = map_controls("captions")
                    c_run = gr.Button(
                        "Caption and explain", variant="primary", elem_id="caption-run"
                    )
                    if examples:
                        gr.Examples(
                            [[str(e.image)] for e in examples],
                            inputs=[c_image],
                            label="Bundled examples",
                            examples_per_page=12,
                        )
                with gr.Column(scale=3):
                    c_text = gr.Textbox(label="Caption", interactive=False, elem_id="caption-text")
                    c_word = gr.Dropdown(
                        [WHOLE_CAPTION],
                        value=WHOLE_CAPTION,
                        label="Word to explain",
                        elem_id="caption-word",
                    )
                    c_map = output_image("Heat map and box", 420, "caption-map")
                    c_boxes = gr.Textbox(label="Box", interactive=False, elem_id="caption-box")
            c_gallery = gr.Gallery(
                label="Every word's map",
                columns=8,
                height=340,  # two rows: captions of the shapes run to ~16 words
                object_fit="contain",
                format="png",
                elem_id="caption-gallery",
            )
            c_files = downloads("Downloads: the heat map (PNG) and every map as arrays (.npz)")
        with gr.Tab("VQA", id="vqa"):
            with gr.Row():
                with gr.Column(scale=2):
                    v_image = input_image("vqa-image")
                    v_question = gr.Textbox(
                        label="Question",
                        placeholder="what color is the circle?",
                        elem_id="vqa-question",
                    )
                    v_method, v_threshold, v_refine = map_controls("vqa")
                    v_run = gr.Button("Answer and explain", variant="primary", elem_id="vqa-run")
                    pairs = [[str(e.image), q] for e in examples for q in e.questions[:2]]
                    if pairs:
                        gr.Examples(
                            pairs,
                            inputs=[v_image, v_question],
                            label="Bundled examples",
                            examples_per_page=4,
                        )
                with gr.Column(scale=3):
                    v_answers = gr.Label(
                        num_top_classes=5, label="Top answers", elem_id="vqa-answers"
                    )
                    v_chosen = gr.Dropdown([], label="Answer to explain", elem_id="vqa-chosen")
                    with gr.Row():
                        v_map = output_image("Evidence for the answer, and its box", 320, "vqa-map")
                        v_against = output_image(
                            "Counterfactual: evidence against it", 320, "vqa-counterfactual"
                        )
                    v_boxes = gr.Textbox(label="Box", interactive=False, elem_id="vqa-box")
                    v_words = gr.HighlightedText(
                        label="Question words the answer used (attention methods of ViLT)",
                        elem_id="vqa-question-words",
                    )
                    v_notes = gr.Markdown()
            v_files = downloads("Downloads: both maps (PNG) and the maps as arrays (.npz)")

        # preprocess=False: the image arrives as Gradio's file record (its path in Gradio's
        # upload cache) and mmcam.app opens it, so a file that is not an image gets a
        # clear message; the other inputs are plain values either way.
        caption_event = dict(concurrency_id="caption", preprocess=False)
        c_inputs = [c_image, c_method, c_word, c_threshold, c_refine]
        c_outputs = [c_text, c_word, c_map, c_boxes, c_gallery, c_files]
        c_run.click(shown_errors(caption), c_inputs, c_outputs, api_name="caption", **caption_event)
        gr.on(
            [c_word.select, c_method.input, c_threshold.release, c_refine.input],
            shown_errors(recaption),
            c_inputs,
            c_outputs,
            api_visibility="private",
            trigger_mode="always_last",
            **caption_event,
        )
        vqa_event = dict(concurrency_id="vqa", preprocess=False)
        v_inputs = [v_image, v_question, v_method, v_chosen, v_threshold, v_refine]
        v_outputs = [v_answers, v_chosen, v_map, v_against, v_boxes, v_notes, v_files, v_words]
        v_run.click(shown_errors(answer), v_inputs, v_outputs, api_name="answer", **vqa_event)
        v_question.submit(
            shown_errors(answer), v_inputs, v_outputs, api_visibility="private", **vqa_event
        )
        gr.on(
            [v_chosen.select, v_method.input, v_threshold.release, v_refine.input],
            shown_errors(reanswer),
            v_inputs,
            v_outputs,
            api_visibility="private",
            trigger_mode="always_last",
            **vqa_event,
        )
    return page


def launch(
    page: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, *, block: bool = True
) -> str:
    """Serve `page` with the queue on (one request at a time per model) and return its URL.

    `port` 0 picks a free port; `block=False` returns at once (close with `page.close()`)."""
    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    page.queue(default_concurrency_limit=1, max_size=64)
    _, url, _ = page.launch(
        server_name=host,
        server_port=port,
        max_file_size=MAX_UPLOAD,
        allowed_paths=[str(DEFAULT_SAMPLES)],  # the examples, wherever we run from
        prevent_thread_lock=not block,
        ssr_mode=False,
        footer_links=["api"],
        quiet=not block,
    )
    return url
