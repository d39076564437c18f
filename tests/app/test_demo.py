"""The demo's endpoints through `gradio_client` against the app launched on 127.0.0.1, its
messages for bad input, its pixel-method maps against the library's, and a load test."""

from __future__ import annotations

import base64
import io
import os
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from PIL import Image  # noqa: E402
from repo_files import module_from_path  # noqa: E402

from mmcam.app import (  # noqa: E402
    MAX_IMAGE_SIDE,
    WHOLE_CAPTION,
    Demo,
    InputError,
    bundled_examples,
    read_image,
)
from mmcam.app.demo import PERTURBATION  # noqa: E402
from mmcam.app.inputs import checked_method, checked_threshold  # noqa: E402
from mmcam.boxes.from_maps import boxes_from_map  # noqa: E402
from mmcam.boxes.refine import refined_box  # noqa: E402
from mmcam.boxes.settings import box_settings  # noqa: E402
from mmcam.core.targets import CaptionLogProb, ClassLogit, WordLogProb  # noqa: E402
from mmcam.data.images import load_image, preprocess  # noqa: E402
from mmcam.explainers.captioning import CaptionExplainer, caption_tokens  # noqa: E402
from mmcam.explainers.vqa import VQAExplainer  # noqa: E402
from mmcam.methods.perturbation import occlusion  # noqa: E402
from mmcam.methods.pixel_space import guided_backprop, guided_grad_cam  # noqa: E402
from mmcam.methods.rise import rise  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def load_app():
    """demos/app.py as a module (demos/ is not a package)."""
    return module_from_path(ROOT / "demos" / "app.py", "mmcam_demo_app")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as demos/app.py runs it: the models are small
    yield Demo.load(work_dir=tmp_path_factory.mktemp("downloads"))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def server(demo):
    app = load_app()
    page = app.build(demo)
    url = app.launch(page, "127.0.0.1", 0, block=False)
    yield page, url
    page.close()


@pytest.fixture(scope="module")
def client(server):
    return Client(server[1], verbose=False)


@pytest.fixture(scope="module")
def samples():
    examples = bundled_examples()
    assert len(examples) >= 2 and all(e.questions for e in examples), "models/samples is empty"
    return examples


def model_input(path: Path) -> torch.Tensor:
    return preprocess(load_image(path))[None]


def update_value(output: object) -> object:
    """A component's value from gradio_client's output (plain, or a `gr.Dropdown(...)` update)."""
    return output["value"] if isinstance(output, dict) and "__type__" in output else output


# ----------------------------------------------------------------------------- endpoints


def test_caption_endpoint_gives_the_models_caption_and_every_word_map(client, demo, samples):
    path = samples[0].image
    images = model_input(path)
    expected = demo.captioner.caption(images)[0]
    words = expected.split()
    label = f"2: {words[1]}"

    text, word, heat_map, box, gallery, files = client.predict(
        handle_file(path), "Grad-CAM", label, 0.15, True, api_name="/caption"
    )

    assert text == expected
    assert update_value(word) == label
    assert [c[0] for c in word["choices"]] == [WHOLE_CAPTION] + [
        f"{i + 1}: {w}" for i, w in enumerate(words)
    ]
    shown = np.asarray(Image.open(heat_map))
    assert shown.shape == (384, 384, 3)  # a 128 x 128 image is drawn at 384 px
    assert np.array_equal(shown, demo.caption(path, "Grad-CAM", label).heat_map)
    assert box.startswith("[x, y, w, h] = [")
    assert [item["caption"] for item in gallery] == [f"{i + 1}: {w}" for i, w in enumerate(words)]
    assert all(Image.open(item["image"]).size == (192, 192) for item in gallery)
    assert sorted(Path(f).suffix for f in files) == [".npz", ".png"]

    arrays = np.load(next(f for f in files if f.endswith(".npz")))
    assert list(arrays["words"]) == words and str(arrays["selected"]) == label
    assert arrays["word_maps"].shape == (len(words), 128, 128)
    assert arrays["caption_map"].shape == (128, 128)
    oracle = CaptionExplainer(demo.captioner, demo.captioner.explained_layer).explain(images)
    np.testing.assert_allclose(arrays["word_maps"], oracle.words.maps[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(arrays["caption_map"], oracle.caption.maps[0].numpy(), atol=1e-6)
    (box_from_map,) = boxes_from_map(oracle.words.maps[0, 1], 0.15, image_size=(128, 128))
    settings = box_settings("gradcam").refine_settings()
    refined = refined_box(Image.open(path).convert("RGB"), oracle.words.maps[0, 1], settings)
    np.testing.assert_array_equal(arrays["boxes"], [refined.to_list(), box_from_map.to_list()])
    x, y, w, h = refined.to_list()
    assert box.startswith(f"[x, y, w, h] = [{x:.0f}, {y:.0f}, {w:.0f}, {h:.0f}]")
    assert "map + image" in box
    x, y, w, h = box_from_map.to_list()
    assert f"the map's own box: [{x:.0f}, {y:.0f}, {w:.0f}, {h:.0f}]" in box
    unrefined = demo.caption(path, "Grad-CAM", label, 0.15, refine=False)
    assert [b["bbox"] for b in unrefined.boxes] == [box_from_map.to_list()]
    assert not unrefined.boxes[0]["refined"]


def test_answer_endpoint_gives_the_models_answers_and_maps(client, demo, samples):
    path, question = samples[1].image, samples[1].questions[0]
    images = model_input(path)
    model = demo.vqa_model
    with torch.no_grad():
        probabilities = torch.softmax(model(images, model.tokenize([question])), dim=1)[0]
    top = probabilities.topk(5)
    expected = [model.answers[i] for i in top.indices.tolist()]

    answers, chosen, heat_map, against, box, notes, files, words = client.predict(
        handle_file(path), question, "Grad-CAM", None, 0.15, True, api_name="/answer"
    )

    assert answers["label"] == model.answer(images, [question])[0] == expected[0]
    assert [c["label"] for c in answers["confidences"]] == expected
    np.testing.assert_allclose(
        [c["confidence"] for c in answers["confidences"]], top.values.numpy(), atol=1e-5
    )
    assert update_value(chosen) == expected[0]
    assert np.asarray(Image.open(heat_map)).shape == (384, 384, 3)
    assert np.asarray(Image.open(against)).shape == (384, 384, 3)
    assert box.startswith("[x, y, w, h] = [") and notes == ""
    assert not words  # question words' relevance: an attention method of a transformer only
    arrays = np.load(next(f for f in files if f.endswith(".npz")))
    oracle = VQAExplainer(model, model.explained_layer).explain(
        images, [question], top_k=5, counterfactual=True
    )
    assert list(arrays["answers"]) == expected == list(arrays["mapped_answers"])
    np.testing.assert_allclose(arrays["maps"], oracle.maps.maps[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(
        arrays["counterfactual_maps"], oracle.counterfactual.maps[0].numpy(), atol=1e-6
    )


def test_choosing_another_answer_maps_that_answer(client, demo, samples):
    path, question = samples[0].image, samples[0].questions[0]
    best = demo.answer(path, question).choices
    answers, chosen, *_, files, _ = client.predict(
        handle_file(path), question, "Grad-CAM++", best[1], 0.15, api_name="/answer"
    )
    assert update_value(chosen) == best[1]
    arrays = np.load(next(f for f in files if f.endswith(".npz")))
    assert str(arrays["selected"]) == best[1] and str(arrays["method"]) == "gradcam++"


# ----------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "notes.txt").write_text("not an image")
    Image.new("RGB", (MAX_IMAGE_SIDE + 1, 8)).save(folder / "wide.png")
    return folder


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (None, "No image: upload an image or pick one of the examples."),
        ("notes.txt", "notes.txt is not an image the demo can read"),
        ("wide.png", "wide.png is 4097 x 8 pixels; the demo takes images up to 4096 pixels"),
    ],
)
def test_bad_image_is_answered_with_a_message(client, bad_files, image, message):
    upload = handle_file(bad_files / image) if image else None
    with pytest.raises(AppError, match=message.replace(".", r"\.")):
        client.predict(upload, "Grad-CAM", None, 0.15, api_name="/caption")
    with pytest.raises(AppError, match=message.replace(".", r"\.")):
        client.predict(
            upload, "what color is the star?", "Grad-CAM", None, 0.15, api_name="/answer"
        )


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("   ", "Empty question"),
        ("zorp blick?", r"knows none of the words of this question \(unknown: 'zorp', 'blick'\)"),
    ],
)
def test_bad_question_is_answered_with_a_message(client, samples, question, message):
    with pytest.raises(AppError, match=message):
        client.predict(
            handle_file(samples[0].image), question, "Grad-CAM", None, 0.15, api_name="/answer"
        )


def test_unknown_words_in_a_question_are_named_but_answered(client, samples):
    *_, notes, _, _ = client.predict(
        handle_file(samples[0].image),
        "what zorp is the star?",
        "Grad-CAM",
        None,
        0.15,
        api_name="/answer",
    )
    assert notes == "Words the model does not know (read as unknown): 'zorp'."


def test_pasted_and_uploaded_images_are_read_as_rgb(tmp_path):
    buffer = io.BytesIO()
    Image.new("LA", (30, 20), (128, 200)).save(buffer, format="PNG")
    pasted = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    image = read_image({"path": None, "url": pasted})
    assert image.mode == "RGB" and image.size == (30, 20) and image.getpixel((0, 0)) == (128,) * 3
    with pytest.raises(InputError, match="The pasted data is not an image"):
        read_image({"path": None, "url": "data:image/png;base64,AAAA"})
    Image.new("P", (7, 5)).save(tmp_path / "palette.gif")
    assert read_image({"path": str(tmp_path / "palette.gif")}).mode == "RGB"


def test_bad_image_checks_in_process(tmp_path):
    with pytest.raises(InputError, match="An array of shape"):
        read_image(np.zeros((0, 3), dtype=np.uint8))
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(InputError, match="cut.png is not an image"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(InputError, match="Unknown method 'gradcam3'"):
        checked_method("gradcam3")
    with pytest.raises(InputError, match="box threshold"):
        checked_threshold(1.0)


# ----------------------------------------------------------------------------- pixel methods


def test_a_request_naming_no_method_gets_the_default_at_its_chosen_layer(demo, samples):
    """No method: the default of models/box_settings.json, mapped at the layer chosen for the
    bundled captioner and VQA model; the same method named explicitly gives the same maps, and
    the box threshold left out is the method's."""
    default = demo.default
    layers = [default.layer_for(m, default.method) for m in (demo.captioner, demo.vqa_model)]
    assert all(layers), "the shipped table names a layer for both bundled models"
    assert f"reads {layers[0]}" in demo.layers_note("captions")  # the page says which layer
    assert f"reads {layers[1]}" in demo.layers_note("vqa")
    path, question = samples[0].image, samples[0].questions[0]
    images = model_input(path)
    shown = demo.caption(path, None, 1)
    assert shown.method == demo.default_method == checked_method(default.method)[0]
    expected = CaptionExplainer(demo.captioner, layers[0]).explain(images, method=default.method)
    np.testing.assert_allclose(shown.word_maps, expected.words.maps[0], atol=1e-6)
    assert np.array_equal(demo.caption(path, demo.default_method, 1).word_maps, shown.word_maps)
    answered = demo.answer(path, question, None)
    expected = VQAExplainer(demo.vqa_model, layers[1]).explain(
        images, [question], top_k=5, method=default.method
    )
    np.testing.assert_allclose(answered.maps, expected.maps.maps[0], atol=1e-6)
    threshold = box_settings(default.method).threshold  # the map's own box: at the method's
    own = boxes_from_map(torch.as_tensor(answered.maps[0]), threshold)[0]
    assert [b["bbox"] for b in answered.boxes if not b["refined"]] == [own.to_list()]
    other = demo.caption(path, "Grad-CAM", 1)  # any other method: the model's own layer
    expected = CaptionExplainer(demo.captioner, demo.captioner.explained_layer).explain(images)
    np.testing.assert_allclose(other.word_maps, expected.words.maps[0], atol=1e-6)


def test_pixel_method_maps_equal_the_library_calls(demo, samples):
    """Guided backprop, guided Grad-CAM, occlusion and RISE maps of the demo are the library's
    maps of each word (occlusion's and RISE's all from one sweep) and each top answer, and the
    occlusion caption map is occlusion of the caption's log-probability."""
    path = samples[0].image
    images = model_input(path)
    model = demo.captioner
    caption = model.generate(images)[0]
    count = len(caption)
    tokens, _ = caption_tokens([caption], model.bos_index, model.eos_index, model.pad_index, "cpu")
    lengths = torch.tensor([count])

    def forward(x, t, n):
        return model.decode_logits(model.encode(x), t, n)

    outlined = demo.caption(path, "Guided backprop", 1)
    explained = CaptionExplainer(model, model.explained_layer).explain(
        images, [caption], method="guided_backprop"
    )
    np.testing.assert_allclose(outlined.word_maps, explained.words.maps[0], atol=1e-5)
    np.testing.assert_allclose(outlined.caption_map, explained.caption.maps[0], atol=1e-5)

    guided = demo.caption(path, "Guided Grad-CAM", 2)
    word = guided_grad_cam(
        forward,
        images,
        WordLogProb(tokens, lengths, 2),
        model,
        model.explained_layer,
        forward_args=(tokens, lengths),
    )
    np.testing.assert_allclose(guided.word_maps[2], word.maps[0], atol=1e-5)

    # occlusion: every word's map from one sweep equals occlusion of that word alone
    occluded = demo.caption(path, "Occlusion", 0)
    settings = PERTURBATION["occlusion"]
    common = dict(model=model, forward_args=(tokens, lengths), **settings)
    whole = occlusion(forward, images, CaptionLogProb(tokens, lengths), **common)
    np.testing.assert_allclose(occluded.caption_map, whole.maps[0], atol=1e-4)
    for position in (0, count - 1):
        word = occlusion(forward, images, WordLogProb(tokens, lengths, position), **common)
        np.testing.assert_allclose(occluded.word_maps[position], word.maps[0], atol=1e-4)
    masked = demo.caption(path, "RISE", 1)
    common = dict(model=model, forward_args=(tokens, lengths), **PERTURBATION["rise"])
    word = rise(forward, images, WordLogProb(tokens, lengths, 1), **common)
    np.testing.assert_allclose(masked.word_maps[1], word.maps[0], atol=1e-4)
    assert masked.word_maps.shape == occluded.word_maps.shape == (count, 128, 128)

    question = samples[0].questions[0]
    vqa = demo.vqa_model
    tokens = vqa.tokenize([question])
    for shown, method in (("Occlusion", occlusion), ("RISE", rise)):
        answered = demo.answer(path, question, shown)
        assert answered.mapped == answered.choices and len(answered.mapped) == 5
        for rank in (0, 4):  # every top answer's map, from one sweep
            index = list(vqa.answers).index(answered.mapped[rank])
            expected = method(
                vqa, images, ClassLogit([index]), forward_args=(tokens,),
                **PERTURBATION[shown.lower()],
            )  # fmt: skip
            np.testing.assert_allclose(answered.maps[rank], expected.maps[0], atol=1e-4)
    answered = demo.answer(path, question, "Guided backprop")
    index = list(vqa.answers).index(answered.selected)
    expected = guided_backprop(
        vqa, images, ClassLogit([index]), forward_args=(vqa.tokenize([question]),)
    )
    assert answered.mapped == answered.choices  # a row per top answer, the explainer's
    selected = answered.mapped.index(answered.selected)
    np.testing.assert_allclose(answered.maps[selected], expected.maps[0], atol=1e-5)


# ----------------------------------------------------------------------------- load


def test_sixteen_concurrent_requests_are_all_answered_correctly(
    server, demo, samples, monkeypatch
):
    """Sixteen requests in flight at once each get their own answer. The server holds the first
    request of each model until all sixteen are submitted, and the two models' first requests
    meet at a barrier, so they are truly concurrent whatever the machine's load; the test
    waits on these events and the answers, never on a duration (the timeouts only turn a hang
    into a failure)."""
    page, url = server
    assert page.enable_queue
    requests = []
    for i in range(16):
        sample = samples[i % len(samples)]
        if i % 2 == 0:
            expected = demo.captioner.caption(model_input(sample.image))[0]
            requests.append(
                ("/caption", (handle_file(sample.image), "Grad-CAM", None, 0.15), expected)
            )
        else:
            question = sample.questions[i % len(sample.questions)]
            expected = demo.vqa_model.answer(model_input(sample.image), [question])[0]
            args = (handle_file(sample.image), question, "Grad-CAM", None, 0.15)
            requests.append(("/answer", args, expected))

    all_submitted = threading.Event()
    both_models_busy = threading.Barrier(2, timeout=120)
    for name in ("caption", "answer"):
        handler, first = getattr(demo, name), threading.Event()

        def held(*args, handler=handler, first=first, **kwargs):
            if not first.is_set():
                first.set()
                assert all_submitted.wait(timeout=120)
                both_models_busy.wait()
            return handler(*args, **kwargs)

        monkeypatch.setattr(demo, name, held)

    client = Client(url, verbose=False, download_files=False)  # the answers, not the files
    jobs = [client.submit(*args, api_name=endpoint) for endpoint, args, _ in requests]
    all_submitted.set()
    results = [job.result(timeout=120) for job in jobs]

    for (endpoint, _, expected), result in zip(requests, results, strict=True):
        got = result[0] if endpoint == "/caption" else result[0]["label"]
        assert got == expected, (endpoint, got, expected)
    assert not both_models_busy.broken
