"""Text specs that are wrong are collection errors naming the file, the line, the field, what was
expected and what was received; nothing here needs TensorFlow.

A keras-hub preset folder is described from its `config.json` alone, so a fake one (the config
of a 3-layer BERT and an empty weights file) is enough to check freezing rules at collection.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import spec

HEAD_ONLY = "[feature_extraction(epochs=1)]"


@pytest.fixture
def fake_preset(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny_bert"
    folder.mkdir()
    config = {
        "module": "keras_hub.src.models.bert.bert_backbone",
        "class_name": "BertBackbone",
        "registered_name": "keras_hub>BertBackbone",
        "config": {"vocabulary_size": 23, "num_layers": 3, "num_heads": 2, "hidden_dim": 8, "intermediate_dim": 16},
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.weights.h5").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder of two class sub-folders (what `image_folder` and `text_folder` check at collection)."""
    root = tmp_path_factory.mktemp("two_classes")
    for name in ("a", "b"):
        (root / name).mkdir()
    return str(root)


def texts() -> spec.Arrays:
    return spec.arrays({"train": (["a b"] * 8, [0, 1] * 4), "validation": (["c d"] * 4, [0, 1] * 2)})


def test_a_text_experiment_is_sized_by_its_backbone() -> None:
    declared = spec.experiment(
        name="t",
        dataset=texts(),
        backbone=spec.keras_hub_backbone("all_minilm_l6_v2_en"),
        phases=[spec.feature_extraction(epochs=1)],
    )
    assert declared.modality == "text" and declared.input_size == 128


def test_the_layer_names_of_a_folder_check_unfreeze_from(fake_preset: Path) -> None:
    backbone = spec.keras_hub_backbone(str(fake_preset))
    assert [info.name for info in backbone.layer_infos or ()][-3:] == [
        "transformer_layer_0",
        "transformer_layer_1",
        "transformer_layer_2",
    ]
    with pytest.raises(spec.SpecError) as error:
        spec.experiment(
            name="t",
            dataset=texts(),
            backbone=backbone,
            phases=[spec.feature_extraction(epochs=1), spec.fine_tune(unfreeze_from="transformer_layer_4", epochs=1)],
        )
    message = str(error.value)
    assert "`fine_tune.unfreeze_from` must match layers of 'tiny_bert'" in message
    assert "'transformer_layer_'" in message and "Received: unfreeze_from='transformer_layer_4'" in message


def test_an_unknown_preset_names_the_close_matches() -> None:
    with pytest.raises(spec.SpecError) as error:
        spec.keras_hub_backbone("all_minilm_l6_v2")
    message = str(error.value)
    assert message.startswith("`keras_hub_backbone.preset` must name a keras-hub text preset or a preset folder")
    assert "Did you mean 'all_minilm_l6_v2_en'" in message and message.endswith("Received: preset='all_minilm_l6_v2'")


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(
            lambda folder: spec.experiment(
                name="t",
                dataset=spec.arrays(dict, image_size=32),
                backbone=spec.keras_hub_backbone("all_minilm_l6_v2_en"),
                phases=[spec.feature_extraction(epochs=1)],
            ),
            "`arrays.image_size` is for images; a text backbone reads texts tokenised to sequence_length",
            id="image-size-on-text",
        ),
        pytest.param(
            lambda folder: spec.experiment(
                name="t",
                dataset=spec.tfds_dataset("ag_news_subset", sequence_length=64),
                backbone=spec.efficientnet_lite0(),
                phases=[spec.feature_extraction(epochs=1)],
            ),
            "`tfds_dataset.sequence_length` is for texts; an image backbone reads images resized to image_size",
            id="sequence-length-on-images",
        ),
        pytest.param(
            lambda folder: spec.experiment(
                name="t",
                dataset=texts(),
                backbone=spec.keras_hub_backbone("all_minilm_l6_v2_en"),
                phases=[spec.feature_extraction(epochs=1, augmentation=[spec.augment("RandomFlip")])],
            ),
            "`feature_extraction.augmentation` must be empty for a text backbone",
            id="augment-on-text",
        ),
        pytest.param(
            lambda folder: spec.experiment(
                name="t",
                dataset=texts(),
                backbone=spec.keras_hub_backbone("all_minilm_l6_v2_en"),
                phases=[spec.fine_tune(unfreeze_all=True, train_batchnorm=True, epochs=1)],
            ),
            "`fine_tune.train_batchnorm` must be False for a text encoder: it has no BatchNormalization",
            id="train-batchnorm-on-text",
        ),
        pytest.param(
            lambda folder: spec.experiment(
                name="t",
                dataset=texts(),
                backbone=spec.keras_hub_backbone("all_minilm_l6_v2_en"),
                head=spec.classifier_head(pooling="max"),
                phases=[spec.feature_extraction(epochs=1)],
            ),
            "`classifier_head.pooling` must suit a text backbone: 'avg' (the mean over the real tokens) or 'cls'",
            id="max-pooling-on-text",
        ),
        pytest.param(
            lambda folder: spec.experiment(
                name="t",
                dataset=spec.tfds_dataset("elpv"),
                backbone=spec.efficientnet_lite0(),
                head=spec.classifier_head(pooling="cls"),
                phases=[spec.feature_extraction(epochs=1)],
            ),
            "`classifier_head.pooling` must suit an image backbone: 'avg' or 'max'",
            id="cls-pooling-on-images",
        ),
        pytest.param(
            lambda folder: spec.experiment(
                name="t",
                dataset=spec.tfds_dataset("elpv"),
                backbone=spec.efficientnet_lite0(),
                phases=[spec.fine_tune(unfreeze_from="block_11_", lora_rank=4, epochs=1)],
            ),
            "`fine_tune.lora_rank` needs a backbone with attention layers to adapt",
            id="lora-on-a-convolutional-backbone",
        ),
        pytest.param(
            lambda folder: spec.experiment(
                name="t",
                dataset=spec.image_folder(folder),
                backbone=spec.keras_hub_backbone("all_minilm_l6_v2_en"),
                phases=[spec.feature_extraction(epochs=1)],
            ),
            "`experiment.dataset` must be a text data set for the text backbone 'all_minilm_l6_v2_en'",
            id="image-folder-on-text",
        ),
        pytest.param(
            lambda folder: spec.experiment(
                name="t",
                dataset=texts(),
                backbone=spec.keras_hub_backbone("all_minilm_l6_v2_en"),
                phases=[spec.feature_extraction(epochs=1)],
                expect=[spec.min_test_accuracy(0.5, runtime="litert_int8")],
            ),
            "`expect` must read exports a text model has",
            id="int8-export-of-text",
        ),
        pytest.param(
            lambda folder: spec.text_folder(folder, encoding="utf-9"),
            "`text_folder.encoding` must be a text encoding Python knows",
            id="unknown-encoding",
        ),
        pytest.param(
            lambda folder: spec.text_folder(folder, sequence_length=1),
            "`text_folder.sequence_length` must be an int >= 2",
            id="sequence-length-too-short",
        ),
        pytest.param(
            lambda folder: spec.arrays(dict, image_size=32, sequence_length=16),
            "`arrays.sequence_length` must not be given with image_size",
            id="both-sizes",
        ),
    ],
)
def test_text_mistakes_are_refused_with_the_fix(build, expected: str, two_classes: str) -> None:
    with pytest.raises(spec.SpecError) as error:
        build(two_classes)
    assert expected in str(error.value)


def test_a_spec_file_with_a_misspelt_preset_is_a_collection_error_naming_its_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        **{
            "specs/text": "from harness import *\n\n"
            "experiment(\n    name='t',\n"
            "    dataset=arrays({'train': (['a'] * 4, [0, 1] * 2), 'validation': (['b'] * 2, [0, 1])}),\n"
            "    backbone=keras_hub_backbone('bert_tiny_en_uncase'),\n"
            "    phases=[feature_extraction(epochs=1)],\n)\n",
            "specs/other": "from harness import *\n\n"
            "experiment(name='fine', dataset=arrays({'train': (['a'] * 4, [0, 1] * 2), "
            "'validation': (['b'] * 2, [0, 1])}), backbone=keras_hub_backbone('all_minilm_l6_v2_en'), "
            "phases=[feature_extraction(epochs=1)])\n",
        }
    )
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*specs/other.py::fine*"])
    result.stdout.fnmatch_lines(
        [
            (
                "*specs/text.py:6: invalid spec: `keras_hub_backbone.preset` must name a keras-hub text preset*"
                "Did you mean 'bert_tiny_en_uncased'*"
            )
        ]
    )
