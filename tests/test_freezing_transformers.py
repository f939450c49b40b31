"""Property tests of the freezing rules on transformer encoders, as keras-hub names their layers.

A text encoder is embeddings (`token_embedding`, `position_embedding`, `embeddings_layer_norm`,
...) then numbered blocks (`transformer_layer_0` ... `transformer_layer_{n-1}`; DeBERTa-v3's
`disentangled_attention_encoder_layer_{i}`, FNet's `f_net_layer_{i}`). The stacks here are
keras-hub's own templates (`harness.backbones.hub_catalog`) at drawn depths, so the laws hold for
every architecture a text spec can name: a block prefix unfreezes that block and every later one
and nothing else (never `transformer_layer_10` for `transformer_layer_1`), the embeddings stay
frozen unless a rule reaches them, a later boundary never unfreezes more, and the last-m index
rule is the top m blocks. Pure functions over names: no TensorFlow.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from harness import freezing
from harness.backbones import hub_catalog
from harness.freezing import LayerInfo, UnfreezeFraction, UnfreezeFromIndex, UnfreezeFromPrefix

# The architectures whose blocks are numbered (ALBERT shares one block across its depth).
ARCHITECTURES = [a for a in hub_catalog.text_architectures() if a != "AlbertBackbone"]
BLOCK = re.compile(r"^(.*_layer_)(\d+)$")


@st.composite
def transformer_stacks(draw, *, min_blocks=1, max_blocks=24):
    """An encoder's layers as the freezing rules see them: one architecture's template at a drawn depth."""
    architecture = draw(st.sampled_from(ARCHITECTURES))
    depth = draw(st.integers(min_blocks, max_blocks))
    return tuple(
        LayerInfo(name, has_weights=weights) for name, weights in hub_catalog.architecture_layers(architecture, depth)
    )


def blocks(layers) -> list[LayerInfo]:
    return [layer for layer in layers if BLOCK.match(layer.name)]


def block_prefix(layer: LayerInfo) -> str:
    return layer.name  # a block's full name is the prefix a spec writes: "transformer_layer_4"


@given(layers=transformer_stacks(), data=st.data())
@example(layers=tuple(LayerInfo(f"transformer_layer_{i}") for i in range(12)), data=None)
def test_a_block_prefix_unfreezes_that_block_and_every_later_one_only(layers, data) -> None:
    stack = blocks(layers)
    k = 1 if data is None else data.draw(st.integers(0, len(stack) - 1))
    trainable = freezing.resolve(layers, UnfreezeFromPrefix(block_prefix(stack[k])))
    assert trainable == {layer.name for layer in stack[k:]}
    embeddings = {layer.name for layer in layers} - {layer.name for layer in stack}
    assert not embeddings & trainable  # the embeddings stay frozen


@given(layers=transformer_stacks(min_blocks=2), data=st.data())
def test_a_later_block_never_unfreezes_a_layer(layers, data) -> None:
    stack = blocks(layers)
    low = data.draw(st.integers(0, len(stack) - 2))
    high = data.draw(st.integers(low + 1, len(stack) - 1))
    lower = freezing.resolve(layers, UnfreezeFromPrefix(stack[low].name))
    upper = freezing.resolve(layers, UnfreezeFromPrefix(stack[high].name))
    assert upper < lower


@given(layers=transformer_stacks(), data=st.data())
def test_the_last_m_index_rule_is_the_top_m_blocks(layers, data) -> None:
    stack = blocks(layers)
    m = data.draw(st.integers(1, len(stack)))
    assert freezing.resolve(layers, UnfreezeFromIndex(-m)) == {layer.name for layer in stack[-m:]}


@given(layers=transformer_stacks(), fractions=st.tuples(st.integers(1, 100), st.integers(1, 100)))
def test_a_smaller_fraction_never_unfreezes_a_layer_and_all_of_them_reach_the_embeddings(layers, fractions) -> None:
    small, large = sorted(f / 100 for f in fractions)
    fewer = freezing.resolve(layers, UnfreezeFraction(small))
    more = freezing.resolve(layers, UnfreezeFraction(large))
    assert fewer <= more
    assert freezing.resolve(layers, UnfreezeFraction(1.0)) >= {layer.name for layer in layers if layer.has_weights}


@given(layers=transformer_stacks(min_blocks=10, max_blocks=24))
def test_a_block_number_never_matches_a_longer_one(layers) -> None:
    stack = blocks(layers)
    stem = BLOCK.match(stack[1].name).group(1)  # type: ignore[union-attr]
    trainable = freezing.resolve(layers, UnfreezeFromPrefix(f"{stem}1"))
    assert trainable == {layer.name for layer in stack[1:]}  # "..._1" is block 1 on, not block 10 on


@given(layers=transformer_stacks(), data=st.data())
def test_an_index_rule_unfreezes_the_slice_it_names_or_says_it_holds_no_weights(layers, data) -> None:
    index = data.draw(st.integers(-len(layers), len(layers) - 1))
    chosen = layers[index:]
    if all(layer.has_weights is False for layer in chosen):  # the embeddings' dropout, say
        with pytest.raises(freezing.RuleError, match="selects no weights"):
            freezing.resolve(layers, UnfreezeFromIndex(index))
        return
    assert freezing.resolve(layers, UnfreezeFromIndex(index)) == {layer.name for layer in chosen}
