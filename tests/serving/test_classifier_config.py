"""The classifier deployment's user_config, read without Ray."""

from __future__ import annotations

import pytest

from serving.classifier import encode_batch_sizes


def test_one_number_applies_to_every_backend():
    assert encode_batch_sizes(8) == {"torch": 8, "onnx": 8, "onnx-int8": 8}


def test_sizes_per_backend_are_kept_as_given():
    assert encode_batch_sizes({"torch": 16, "onnx-int8": 1}) == {
        "torch": 16,
        "onnx-int8": 1,
    }


def test_an_unknown_backend_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown backend tensorrt.*onnx-int8"):
        encode_batch_sizes({"tensorrt": 4})


def test_a_size_under_one_names_its_backend():
    with pytest.raises(ValueError, match="encode_batch_size for onnx: must be >= 1"):
        encode_batch_sizes({"onnx": 0})
