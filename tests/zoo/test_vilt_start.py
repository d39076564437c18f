"""Starting a ViLT from a trained BLIP vision encoder (`start_from_vision`): the copied layers
compute what the encoder's layers compute, what has no counterpart keeps its random start, and
a size that differs is refused."""

from __future__ import annotations

import pytest
import torch

from mmcam.zoo.blip_captioner import blip_processor, new_blip
from mmcam.zoo.vilt_vqa import new_vilt, start_from_vision, vilt_processor

TEXTS = ["a red circle", "what color is the circle"]


def models(hidden: int = 32, vilt_layers: int = 2):
    torch.manual_seed(0)
    blip = new_blip(blip_processor(TEXTS), hidden=hidden, layers=1, heads=2).eval()
    vilt = new_vilt(vilt_processor(TEXTS), ["yes", "no"], hidden=32, layers=vilt_layers, heads=2)
    return blip.vision_model, vilt.model.eval()


def hidden_states(output):
    """A layer's output states (some layers return a tuple)."""
    return output[0] if isinstance(output, tuple) else output


def test_the_copied_layer_computes_what_the_encoder_layer_computes():
    vision, vilt = models()
    untouched = {k: v.clone() for k, v in vilt.state_dict().items() if "layer.1." in k}
    final_norm = vilt.vilt.layernorm.weight.clone()
    copied = start_from_vision(vilt, vision.state_dict())
    assert "encoder.layer.0.attention.attention.key.weight" in copied
    x = torch.randn(2, 17, 32)
    with torch.no_grad():
        expected = hidden_states(vision.encoder.layers[0](x, attention_mask=None))
        got = hidden_states(vilt.vilt.encoder.layer[0](x))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)  # layer-norm eps differ
    embeddings = vilt.vilt.embeddings
    assert torch.equal(embeddings.cls_token, vision.embeddings.class_embedding)
    assert torch.equal(embeddings.position_embeddings, vision.embeddings.position_embedding)
    assert torch.equal(
        embeddings.patch_embeddings.projection.weight, vision.embeddings.patch_embedding.weight
    )
    for key, value in untouched.items():  # the second layer has no counterpart
        assert torch.equal(vilt.state_dict()[key], value)
    assert torch.equal(vilt.vilt.layernorm.weight, final_norm)  # kept: not every layer copied


def test_with_as_many_layers_the_final_layer_norm_is_copied_too():
    vision, vilt = models(vilt_layers=1)
    start_from_vision(vilt, vision.state_dict())
    assert torch.equal(vilt.vilt.layernorm.weight, vision.post_layernorm.weight)


def test_an_encoder_of_another_size_is_refused():
    vision, vilt = models(hidden=64)
    with pytest.raises(ValueError, match=r"image encoder's embeddings.cls_token is \(1, 1, 64\)"):
        start_from_vision(vilt, vision.state_dict())
