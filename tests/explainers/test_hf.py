"""Hugging Face adapters (BLIP captioning and VQA, ViLT VQA) on tiny random configs, offline."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from PIL import Image
from torch import nn
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipForQuestionAnswering,
    BlipImageProcessor,
    BlipProcessor,
    ViltConfig,
    ViltForQuestionAnswering,
    ViltImageProcessor,
    ViltProcessor,
)

from mmcam.app.demo import PERTURBATION, Demo
from mmcam.app.inputs import InputError
from mmcam.core.tap import Tap
from mmcam.core.targets import WordLogProb
from mmcam.explainers.captioning import CaptionExplainer, caption_tokens
from mmcam.explainers.cross_attention import explain_caption_attention, explain_vqa_attention
from mmcam.explainers.hf import load_hf_captioner, load_hf_vqa
from mmcam.explainers.hf.blip import BlipCaptioner, BlipVQA
from mmcam.explainers.hf.vilt import ViltVQA
from mmcam.explainers.vqa import VQAExplainer
from mmcam.methods.cam import grad_cam

WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] a the cat dog on red blue is what color of sat mat two "
    "yes no left there ##s [DEC]"
).split()
ANSWERS = ["yes", "no", "red", "two", "left"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(WORDS) + "\n")
    return BertTokenizer(vocab=str(vocab), bos_token="[DEC]")


def blip_config() -> BlipConfig:
    tiny = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
    text = dict(
        tiny,
        vocab_size=len(WORDS),
        max_position_embeddings=32,
        bos_token_id=WORDS.index("[DEC]"),
        pad_token_id=0,
        sep_token_id=3,
        eos_token_id=3,
    )
    return BlipConfig(
        text_config=text,
        vision_config=dict(tiny, image_size=32, patch_size=8),  # 4x4 patch grid
        projection_dim=32,
        attn_implementation="eager",  # attention probabilities pass a module (attention methods)
    )


@pytest.fixture(scope="module")
def blip_processor(tokenizer):
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def captioner(blip_processor):
    torch.manual_seed(0)
    return BlipCaptioner(BlipForConditionalGeneration(blip_config()).eval(), blip_processor)


@pytest.fixture(scope="module")
def blip_vqa(blip_processor):
    torch.manual_seed(1)
    model = BlipForQuestionAnswering(blip_config()).eval()
    return BlipVQA(model, blip_processor, ANSWERS)


@pytest.fixture(scope="module")
def vilt_processor(tokenizer):
    image_processor = ViltImageProcessor(size={"shortest_edge": 48}, size_divisor=16)
    return ViltProcessor(image_processor=image_processor, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def vilt(vilt_processor):
    torch.manual_seed(2)
    config = ViltConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=37,
        image_size=64,
        patch_size=16,
        max_position_embeddings=40,
        num_labels=len(ANSWERS),
        id2label=dict(enumerate(ANSWERS)),
        attn_implementation="eager",
    )
    return ViltVQA(ViltForQuestionAnswering(config).eval(), vilt_processor)


def picture(height: int, width: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(3)
    return torch.randn(2, 3, 32, 32)


CAPTIONS = [[7, 9, 6, 17], [8, 16]]  # cat on the mat / dog sat: different lengths
QUESTIONS = ["what color is the cat", "is there a dog"]


def hooks(model: nn.Module) -> list[int]:
    return [
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    ]


# Captioning ------------------------------------------------------------------------------


def test_caption_logprob_equals_sum_of_word_logprobs(captioner, images):
    explainer = CaptionExplainer(captioner, captioner.layer, to_grid=captioner.to_grid)
    result = explainer.explain(images, CAPTIONS)
    tokens, counts = caption_tokens(CAPTIONS, captioner.bos_index, 3, 0, torch.device("cpu"))
    with torch.no_grad():  # the Hugging Face model's own forward, not the adapter's
        logits = captioner.model(pixel_values=images, input_ids=tokens).logits
    logp = logits.log_softmax(-1)[:, :-1].gather(2, tokens[:, 1:, None]).squeeze(2)
    whole = torch.stack([logp[row, : len(c)].sum() for row, c in enumerate(CAPTIONS)])
    torch.testing.assert_close(result.caption.scores, whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(result.words.scores.sum(1), whole, atol=1e-5, rtol=0)
    assert result.words.labels == [["cat", "on", "the", "mat"], ["dog", "sat"]]
    assert result.words.raw.shape == (2, 4, 4, 4)  # [B, T, h, w]: the 4x4 patch grid


def test_blip_word_maps_equal_one_word_at_a_time(captioner, images):
    explainer = CaptionExplainer(captioner, captioner.layer, to_grid=captioner.to_grid)
    result = explainer.explain(images, CAPTIONS, method="gradcam++")
    tokens, counts = caption_tokens(CAPTIONS, captioner.bos_index, 3, 0, torch.device("cpu"))
    for position in range(4):
        with Tap(captioner, captioner.layer, to_grid=captioner.to_grid) as tap:
            logits = captioner.decode_logits(captioner.encode(images), tokens, counts)
            scores = WordLogProb(tokens, counts, position)(logits)
        single = grad_cam(tap, scores, "gradcam++", size=images.shape[-2:])
        for row, caption in enumerate(CAPTIONS):
            if position < len(caption):
                torch.testing.assert_close(
                    result.words.raw[row, position], single.raw[row], atol=1e-5, rtol=0
                )
    assert result.words.raw.abs().sum() > 0


def albef_map(attention, gradients, queries, grid):
    """The ALBEF/BLIP formula written out: heads averaged, queries averaged, class patch dropped."""
    maps = []
    for q in queries:
        maps.append((gradients[:, q].clamp(min=0) * attention[:, q]).mean(0))  # [Tk]
    return torch.stack(maps).mean(0)[1:].reshape(grid)


def test_cross_attention_word_maps_equal_one_word_at_a_time(captioner, images):
    result = explain_caption_attention(
        captioner, images, CAPTIONS, captioner.attention_layer, captioner.grid
    )
    reference = copy.deepcopy(captioner.model)  # output_attentions leaves recorder hooks
    tokens, _ = caption_tokens(CAPTIONS, captioner.bos_index, 3, 0, torch.device("cpu"))
    for row, caption in enumerate(CAPTIONS):
        with torch.no_grad():
            pixels = reference.vision_model(pixel_values=images[row : row + 1]).last_hidden_state
        decoded = reference.text_decoder(
            input_ids=tokens[row : row + 1],
            encoder_hidden_states=pixels,
            output_attentions=True,
            use_cache=False,
        )
        attention = decoded.cross_attentions[-1]  # [1, H, L, 1 + 16]
        logp = decoded.logits.log_softmax(-1)[0, :-1].gather(1, tokens[row, 1:, None])[:, 0]
        for t in range(len(caption)):
            (grads,) = torch.autograd.grad(logp[t], attention, retain_graph=True)
            expected = albef_map(attention[0].detach(), grads[0], range(t + 1), (4, 4))
            torch.testing.assert_close(result.words.raw[row, t], expected, atol=1e-6, rtol=1e-4)
        (grads,) = torch.autograd.grad(logp[: len(caption)].sum(), attention)
        expected = albef_map(attention[0].detach(), grads[0], range(len(caption)), (4, 4))
        torch.testing.assert_close(result.caption.raw[row], expected, atol=1e-6, rtol=1e-4)
    assert result.words.raw.abs().sum() > 0 and result.words.empty[1, 2:].all()


def test_explain_image_maps_in_original_pixels_and_hooks_gone(captioner):
    before = hooks(captioner)
    image = picture(40, 56, seed=0)
    for method in ("gradcam", "attention_gradcam"):
        result = captioner.explain_image(image, "a cat on the mat", method=method)
        assert result.texts == ["a cat on the mat"]
        assert result.words.raw.shape == (1, 5, 4, 4)  # patch grid before upsampling
        assert result.words.maps.shape == (1, 5, 40, 56)  # the original image after
        assert result.caption.maps.shape == (1, 40, 56)
    generated = captioner.explain_image(image, max_length=3)
    assert 1 <= len(generated.captions[0]) <= 3
    assert hooks(captioner) == before
    assert all(p.grad is None for p in captioner.parameters())


# VQA -------------------------------------------------------------------------------------


class Gridded(nn.Module):
    """Runs `layer`, passes its patch tokens through an Identity as a grid (for Captum to hook)
    and back, so Captum's LayerGradCam sees the same [N, D, h, w] reshape as the adapter."""

    def __init__(self, layer: nn.Module, to_grid) -> None:
        super().__init__()
        self.layer, self.to_grid, self.grid = layer, to_grid, nn.Identity()

    def forward(self, *args, **kwargs):
        output = self.layer(*args, **kwargs)
        tokens = output[0] if isinstance(output, tuple) else output
        grid = self.grid(self.to_grid(tokens))  # [N, D, h, w]
        patches = grid.flatten(2).transpose(1, 2)
        tokens = torch.cat([tokens[:, : -patches.shape[1]], patches], dim=1)
        return (tokens, *output[1:]) if isinstance(output, tuple) else tokens


def captum_maps(adapter, images, questions, best, layer_list, index):
    reference = copy.deepcopy(adapter)
    layers = layer_list(reference)
    layers[index] = Gridded(layers[index], reference.to_grid)
    gradcam = LayerGradCam(lambda x: reference(x, questions), layers[index].grid)
    return [
        gradcam.attribute(images, target=best[:, rank].tolist(), relu_attributions=True)
        .squeeze(1)
        .detach()
        for rank in range(best.shape[1])
    ]


def test_vilt_logits_equal_the_hugging_face_forward(vilt, vilt_processor):
    pictures = [picture(40, 56, seed=1), picture(56, 40, seed=2)]  # padded to one size
    inputs = vilt_processor(images=pictures, text=QUESTIONS, padding=True, return_tensors="pt")
    assert (inputs["pixel_mask"] == 0).any()
    with torch.no_grad():
        theirs = vilt.model(**inputs).logits
        questions = {key: inputs[key] for key in ("input_ids", "attention_mask", "pixel_mask")}
        ours = vilt(inputs["pixel_values"], questions)
        again = vilt(inputs["pixel_values"], questions)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert torch.equal(ours, again)  # every patch kept, in grid order: deterministic


def test_vilt_answer_maps_equal_captum_layergradcam(vilt, vilt_processor):
    processed = vilt.preprocess([picture(40, 56, seed=1), picture(40, 56, seed=2)])
    images = processed.pixel_values  # [2, 3, 48, 64]: a 3x4 patch grid
    result = VQAExplainer(vilt, vilt.layer, to_grid=vilt.to_grid).explain(images, QUESTIONS)
    questions = vilt.tokenize(QUESTIONS)
    with torch.no_grad():
        logits = vilt(images, questions)
    best = logits.topk(3, dim=1).indices
    assert result.answers == [[ANSWERS[i] for i in row] for row in best.tolist()]
    assert result.maps.raw.shape == (2, 3, 3, 4)
    index = int(vilt.layer.rsplit(".", 1)[1])
    theirs = captum_maps(vilt, images, questions, best, lambda m: m.model.vilt.encoder.layer, index)
    for rank in range(3):
        torch.testing.assert_close(result.maps.raw[:, rank], theirs[rank], atol=1e-5, rtol=1e-4)
    assert result.maps.raw.abs().sum() > 0


def test_blip_vqa_answer_score_is_the_answer_logprob(blip_vqa, images):
    questions = blip_vqa.tokenize(QUESTIONS[:1])
    with torch.no_grad():
        scores = blip_vqa(images[:1], questions)[0]
        for index, answer in enumerate(ANSWERS):
            labels = blip_vqa.tokenizer([answer], return_tensors="pt")["input_ids"]
            labels[:, 0] = blip_vqa.model.config.text_config.bos_token_id
            loss = blip_vqa.model(
                input_ids=questions["input_ids"],
                attention_mask=questions["attention_mask"],
                pixel_values=images[:1],
                labels=labels,
            ).loss  # mean cross-entropy over the answer tokens after BOS
            expected = -loss * (labels.shape[1] - 1)
            torch.testing.assert_close(scores[index], expected, atol=1e-5, rtol=1e-5)


def test_blip_vqa_answer_maps_equal_captum_layergradcam(blip_vqa, images):
    result = VQAExplainer(blip_vqa, blip_vqa.layer, to_grid=blip_vqa.to_grid).explain(
        images, QUESTIONS, top_k=2
    )
    questions = blip_vqa.tokenize(QUESTIONS)
    with torch.no_grad():
        logits = blip_vqa(images, questions)
    best = logits.topk(2, dim=1).indices
    assert result.answers == [[ANSWERS[i] for i in row] for row in best.tolist()]
    theirs = captum_maps(
        blip_vqa, images, questions, best, lambda m: m.model.vision_model.encoder.layers, -1
    )
    for rank in range(2):
        torch.testing.assert_close(result.maps.raw[:, rank], theirs[rank], atol=1e-5, rtol=1e-4)
    assert result.maps.raw.shape == (2, 2, 4, 4) and result.maps.raw.abs().sum() > 0


def test_blip_vqa_cross_attention_maps_equal_one_answer_at_a_time(blip_vqa, images):
    queries = blip_vqa.question_tokens(QUESTIONS)
    layer, grid = blip_vqa.attention_layer, blip_vqa.grid
    both = explain_vqa_attention(blip_vqa, images, QUESTIONS, layer, grid, queries, top_k=2)
    first = explain_vqa_attention(blip_vqa, images, QUESTIONS, layer, grid, queries, top_k=1)
    torch.testing.assert_close(both.maps.raw[:, 0], first.maps.raw[:, 0], atol=1e-6, rtol=0)
    assert both.maps.raw.shape == (2, 2, 4, 4) and both.maps.raw.abs().sum() > 0


def test_vqa_explain_image_in_original_pixels_hooks_gone(vilt, blip_vqa):
    image = picture(40, 56, seed=4)  # ViLT: 48x64 input, 3x4 patches; BLIP: 32x32, 4x4
    for adapter, methods, grid in (
        (vilt, ["gradcam", "attention_gradcam", "relevance"], (3, 4)),
        (blip_vqa, ["gradcam", "attention_gradcam"], (4, 4)),
    ):
        before = hooks(adapter)
        for method in methods:
            result = adapter.explain_image(image, "what color is the cat", top_k=2, method=method)
            assert result.maps.raw.shape == (1, 2, *grid)
            assert result.maps.maps.shape == (1, 2, 40, 56)
            assert result.probabilities.shape == (1, 2)
        assert hooks(adapter) == before
        assert all(p.grad is None for p in adapter.parameters())
    with pytest.raises(ValueError, match="not offered for cross_attention"):
        blip_vqa.explain_image(image, "what color", method="relevance")  # question + answer


def test_vilt_patch_tokens_follow_the_image_grid(vilt):
    torch.manual_seed(5)
    images = torch.randn(1, 3, 48, 64)  # a 3x4 grid of 16-pixel patches
    changed = images.clone()
    changed[..., 16:32, 32:48] += 1.0  # only patch (row 1, column 2)
    mask = torch.ones(1, 48, 64)
    with torch.no_grad():
        tokens, _ = vilt._patch_tokens(images, mask)
        grid = vilt.to_grid(tokens)  # [1, D, 3, 4]
        other = vilt.to_grid(vilt._patch_tokens(changed, mask)[0])
    moved = (other - grid).abs().sum(dim=1)[0]  # [3, 4]
    assert moved[1, 2] > 0
    assert moved.flatten().count_nonzero() == 1


def test_vilt_refuses_its_last_layer(vilt):
    with pytest.raises(ValueError, match="do not reach the classifier"):
        ViltVQA(vilt.model, vilt.processor, layer=-1)


# Loading ---------------------------------------------------------------------------------


def test_loaders_read_a_local_directory(captioner, vilt, tmp_path, images):
    captioner.model.save_pretrained(tmp_path / "blip")
    captioner.processor.save_pretrained(tmp_path / "blip")
    vilt.model.save_pretrained(tmp_path / "vilt")
    vilt.processor.save_pretrained(tmp_path / "vilt")
    loaded = load_hf_captioner(str(tmp_path / "blip"))
    tokens, counts = caption_tokens(CAPTIONS, captioner.bos_index, 3, 0, torch.device("cpu"))
    with torch.no_grad():
        expected = captioner.decode_logits(captioner.encode(images), tokens, counts)
        got = loaded.decode_logits(loaded.encode(images), tokens, counts)
    torch.testing.assert_close(got, expected)
    assert loaded.layer == captioner.layer and loaded.grid == (4, 4)
    vqa = load_hf_vqa(str(tmp_path / "vilt"))
    assert isinstance(vqa, ViltVQA) and vqa.answers == ANSWERS
    with pytest.raises(ValueError, match="pass answers"):
        load_hf_vqa(str(tmp_path / "blip"))


def test_demo_explains_hugging_face_models_by_the_gradient_and_perturbation_methods(
    captioner, vilt, tmp_path
):
    for name, adapter in (("blip", captioner), ("vilt", vilt)):
        adapter.model.save_pretrained(tmp_path / name)
        adapter.processor.save_pretrained(tmp_path / name)
    demo = Demo.load(
        hf_captioner=str(tmp_path / "blip"), hf_vqa=str(tmp_path / "vilt"), work_dir=tmp_path
    )
    image = picture(40, 56, seed=1)
    captioned = demo.caption(image, "HiResCAM")
    pixels = captioner.preprocess(image).pixel_values
    expected = captioner.words(CaptionExplainer(captioner, captioner.layer).generate(pixels)[0])
    assert captioned.words == expected and captioned.image_size == (40, 56)
    assert captioned.heat_map.shape[:2] == (274, 384)  # shown with its longer side at 384 px
    assert captioned.word_maps.shape == (len(expected), *pixels.shape[-2:])
    answered = demo.answer(image, QUESTIONS[0], "Grad-CAM")
    with torch.no_grad():
        processed = vilt.preprocess([image])
        logits = vilt(processed.pixel_values, vilt.tokenize([QUESTIONS[0]]))
    assert answered.selected == ANSWERS[int(logits.argmax())]
    assert "guided_backprop" not in demo.methods("vqa") and "rise" in demo.methods("captions")
    with pytest.raises(InputError, match="Guided Grad-CAM is offered for the convolutional"):
        demo.answer(image, QUESTIONS[0], "Guided Grad-CAM")
    occluded = demo.answer(image, QUESTIONS[0], "Occlusion")  # needs no ReLU: offered here
    # The demo's own model (loaded from the folder): a copy with equal weights rounds its
    # logits differently in the last bits (1.5e-8 here), which occlusion's small drops magnify.
    loaded = demo.vqa_model
    expected = VQAExplainer(loaded, vilt.layer).explain(
        processed.pixel_values, [QUESTIONS[0]], top_k=5, method="occlusion",
        perturbation=PERTURBATION["occlusion"],
    )  # fmt: skip
    assert occluded.mapped == expected.answers[0]
    np.testing.assert_array_equal(occluded.maps, expected.maps.maps[0])  # bit for bit
    masked = demo.caption(image, "RISE")
    assert masked.word_maps.shape == captioned.word_maps.shape
    assert not masked.word_maps.isnan().any()


def test_former_cross_attention_spelling_gives_the_same_map_with_a_warning(captioner):
    image = picture(40, 56, seed=0)
    current = captioner.explain_image(image, "a cat on the mat", method="attention_gradcam")
    with pytest.warns(DeprecationWarning, match="now called 'attention_gradcam'"):
        former = captioner.explain_image(image, "a cat on the mat", method="cross-attention")
    torch.testing.assert_close(former.words.raw, current.words.raw, rtol=0, atol=0)
