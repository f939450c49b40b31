"""Property tests of the freezing rules: laws over layer names, then the same laws on real models.

The rules in `harness.freezing` resolve, as pure functions over `LayerInfo`s, to the qualified
names of the layers they make trainable. Most properties are stated on drawn layer stacks and
cost about a millisecond an example. Those that need Keras run few examples on models built
once per module: two tiny functional models (one with a base model nested two levels deep) and
`keras.applications` architectures built with `weights=None`. Keras is imported by those
fixtures only, so the pure properties run without TensorFlow.

Each rule is checked against `documented_slice`, a plain restatement of its docstring, and
`prefix_matches` against `token_boundaries`, a regular-expression tokenizer, so the tests do not
reuse the code they test.
"""

from __future__ import annotations

import itertools
import math
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from harness import freezing
from harness.freezing import (
    FreezeAll,
    LayerInfo,
    RuleError,
    UnfreezeAll,
    UnfreezeFraction,
    UnfreezeFromIndex,
    UnfreezeFromPrefix,
    UnfreezeLayers,
)

RULE_KINDS = (FreezeAll, UnfreezeAll, UnfreezeFromIndex, UnfreezeFraction, UnfreezeFromPrefix, UnfreezeLayers)
SLICE_KINDS = (UnfreezeAll, UnfreezeFromIndex, UnfreezeFraction, UnfreezeFromPrefix)
# Settings of the tests that build or change Keras models: a few examples, no deadline (the first
# example pays for tracing). The other tests follow the profile conftest.py loads.
ON_KERAS_MODELS = settings(max_examples=10, deadline=None)


# --------------------------------------------------------------------------- reference semantics

TOKEN = re.compile(r"[0-9]+|[A-Za-z]+|[^0-9A-Za-z]")


def token_boundaries(name: str) -> list[int]:
    """Where the tokens of `name` end (runs of digits, runs of letters, single separators).

    'block_13_expand' -> [5, 6, 8, 9, 15]: 'block', 'block_', 'block_13', 'block_13_', the name.
    """
    return list(itertools.accumulate(len(token) for token in TOKEN.findall(name)))


def starts_at_token_boundary(prefix: str, name: str) -> bool:
    return bool(prefix) and name.startswith(prefix) and len(prefix) in token_boundaries(name)


def first_match(layers, prefix: str) -> int | None:
    return next((i for i, layer in enumerate(layers) if starts_at_token_boundary(prefix, layer.name)), None)


def documented_slice(layers, rule) -> list[LayerInfo]:
    """The layers `rule` selects, as its docstring says, before BatchNorm is set aside.

    Fractions are read as the ratio of small integers they were drawn as (see `unit_fractions`),
    so `UnfreezeFraction(0.07)` of 100 layers is 7 layers, whatever 0.07 * 100 is in floating point.
    """
    layers, n = list(layers), len(layers)
    if isinstance(rule, FreezeAll):
        return []
    if isinstance(rule, UnfreezeAll):
        return layers
    if isinstance(rule, UnfreezeFromIndex):
        return layers[rule.index :] if -n <= rule.index < n else []
    if isinstance(rule, UnfreezeFraction):
        count = max(1, math.ceil(Fraction(rule.fraction).limit_denominator(1000) * n))
        return layers[n - count :]
    if isinstance(rule, UnfreezeFromPrefix):
        start = first_match(layers, rule.prefix)
        return [] if start is None else layers[start:]
    return [layer for layer in layers if layer.name in rule.names]


def expected_trainable(layers, rule, *, train_batchnorm: bool) -> frozenset[str]:
    return frozenset(
        layer.qualified_name for layer in documented_slice(layers, rule) if train_batchnorm or not layer.is_batchnorm
    )


def trainable_or_nothing(layers, rule, *, train_batchnorm: bool) -> frozenset[str]:
    """`resolve`, with its one legitimate failure on a valid rule read as "nothing trainable".

    That failure is a rule whose layers are all BatchNorm while `train_batchnorm` is off.
    """
    try:
        return freezing.resolve(layers, rule, train_batchnorm=train_batchnorm)
    except RuleError:
        assert not train_batchnorm
        assert all(layer.is_batchnorm for layer in documented_slice(layers, rule))
        return frozenset()


def stack(*names: str) -> tuple[LayerInfo, ...]:
    """A layer stack for examples: names with a "bn" or "BN" part ('bn_Conv1', 'block_1_expand_BN') are BatchNorm."""
    return tuple(LayerInfo(name, (), "bn" in name.lower().split("_")) for name in names)


def plain_names(qualified_names) -> set[str]:
    return {name.rsplit("/", 1)[-1] for name in qualified_names}


MOBILENET_LIKE = stack(
    "Conv1", "bn_Conv1", "Conv1_relu",
    "block_1_expand", "block_1_expand_BN", "block_1_project", "block_1_project_BN",
    "block_2_expand", "block_2_expand_BN", "block_2_add",
    "block_12_expand", "block_12_expand_BN", "block_12_add",
    "block_13_expand", "block_13_expand_BN", "block_13_project", "block_13_project_BN",
    "Conv_1", "Conv_1_bn", "out_relu",
)  # fmt: skip
HUNDRED = stack(*(f"layer_{i}" for i in range(100)))


# --------------------------------------------------------------------------- strategies

WORDS = ("block", "conv", "expand", "project", "depthwise", "BN", "bn", "se", "stem", "top", "add", "a", "b")
TOKENS = st.sampled_from(WORDS + tuple(str(i) for i in range(21)))
SEPARATORS = st.sampled_from(["_", "_", "", "-", "."])


# The names of real backbones (MobileNetV2, EfficientNet, ResNet) and a few odd ones: siblings
# such as block_1_ and block_13_, block6a and block6b, conv2_block1 and conv2_block10 abound.
LAYER_NAMES = (
    "Conv1", "bn_Conv1", "Conv1_relu", "expanded_conv_depthwise", "expanded_conv_project",
    *(f"block_{i}_{part}" for i in range(1, 17) for part in ("expand", "expand_BN", "depthwise", "project_BN", "add")),
    "Conv_1", "Conv_1_bn", "out_relu", "rescaling", "normalization", "stem_conv", "stem_bn",
    *(f"block{i}{c}_{part}" for i in range(1, 8) for c in "abc" for part in ("expand_conv", "bn", "se_squeeze", "add")),
    "top_conv", "top_bn", "top_activation",
    *(f"conv{i}_block{j}_{part}" for i in range(2, 6) for j in (1, 2, 3, 10, 11) for part in ("1_conv", "1_bn", "out")),
    "a", "a1", "a_1", "a-1", "a.1", "b2c", "x__y", "layer", "layer_", "9lives",
)  # fmt: skip


@st.composite
def layer_names(draw, *, max_tokens=5):
    """Names made like Keras's: words and numbers joined by "_", "-", "." or nothing ('block_13_expand', 'block6a_se')."""
    name = draw(TOKENS)
    for _ in range(draw(st.integers(0, max_tokens - 1))):
        name += draw(SEPARATORS) + draw(TOKENS)
    return name


@st.composite
def layer_stacks(draw, *, min_size=1, max_size=40):
    """Flat stacks of layers with unique names from `LAYER_NAMES`, some of them BatchNorm.

    The names are sampled, not built, and the BatchNorm flags are the bits of one integer:
    a few draws a stack keep the 200 examples of the `ci` profile within seconds.
    """
    names = draw(st.lists(st.sampled_from(LAYER_NAMES), min_size=min_size, max_size=max_size, unique=True))
    batchnorm = draw(st.integers(0, 2 ** len(names) - 1))
    return tuple(LayerInfo(name, (), bool(batchnorm >> i & 1)) for i, name in enumerate(names))


@st.composite
def token_prefixes(draw, name):
    """Prefixes of `name` that end at a token boundary: 'block', 'block_', 'block_13', 'block_13_'..."""
    return name[: draw(st.sampled_from(token_boundaries(name)))]


@st.composite
def unit_fractions(draw, *, max_denominator=100):
    """Fractions in (0, 1] as a spec writes them: 0.25, 0.07, 1/3."""
    denominator = draw(st.integers(1, max_denominator))
    return draw(st.integers(1, denominator)) / denominator


@st.composite
def rules(draw, layers, *, kinds=RULE_KINDS):
    """Valid rules for a non-empty stack: indices in range, prefixes and names of its layers."""
    kind = draw(st.sampled_from(kinds))
    n = len(layers)
    if kind is UnfreezeFromIndex:
        return UnfreezeFromIndex(draw(st.integers(-n, n - 1)))
    if kind is UnfreezeFraction:
        return UnfreezeFraction(draw(unit_fractions()))
    if kind is UnfreezeFromPrefix:
        return UnfreezeFromPrefix(draw(token_prefixes(draw(st.sampled_from(layers)).name)))
    if kind is UnfreezeLayers:
        names = [layer.name for layer in layers]
        return UnfreezeLayers(tuple(draw(st.lists(st.sampled_from(names), min_size=1, max_size=n, unique=True))))
    return kind()


@st.composite
def layer_stacks_with_rules(draw, *, kinds=RULE_KINDS, min_size=1, max_size=40):
    layers = draw(layer_stacks(min_size=min_size, max_size=max_size))
    return layers, draw(rules(layers, kinds=kinds))


@st.composite
def layer_stacks_with_counts(draw, *, min_size=1, max_size=40):
    """A stack and a number of its layers, 1 to all of them."""
    layers = draw(layer_stacks(min_size=min_size, max_size=max_size))
    return layers, draw(st.integers(1, len(layers)))


NESTED_PATHS = (("backbone",), ("backbone", "stage_1"), ("backbone", "stage_2"), ("backbone", "stage_2", "inner"))


@st.composite
def weighted(draw, layers):
    """`layers` with `has_weights` drawn for each: known True, known False, or unknown (None)."""
    flags = draw(st.lists(st.sampled_from([True, False, None]), min_size=len(layers), max_size=len(layers)))
    return tuple(
        LayerInfo(layer.name, layer.parents, layer.is_batchnorm, flag)
        for layer, flag in zip(layers, flags, strict=True)
    )


@st.composite
def nestings(draw, layers):
    """`layers` split into consecutive runs, each in a nested model: ('backbone',), ('backbone', 'stage_2')..."""
    cuts = draw(st.integers(0, 2 ** len(layers) - 1))  # Bit i set: a new run starts at layer i.
    nested, path = [], NESTED_PATHS[0]
    for i, layer in enumerate(layers):
        if cuts >> i & 1:
            path = draw(st.sampled_from(NESTED_PATHS))
        nested.append(LayerInfo(layer.name, path, layer.is_batchnorm))
    return tuple(nested)


# --------------------------------------------------------------------------- laws over layer names


@given(case=layer_stacks_with_rules(), train_batchnorm=st.booleans())
@example(case=(MOBILENET_LIKE, UnfreezeFromPrefix("block_13_")), train_batchnorm=False)
@example(case=(stack("a_bn", "b"), UnfreezeFromIndex(-1)), train_batchnorm=False)
def test_trainable_and_frozen_layers_partition_the_stack(case, train_batchnorm):
    layers, rule = case
    names = {layer.qualified_name for layer in layers}

    trainable = trainable_or_nothing(layers, rule, train_batchnorm=train_batchnorm)
    frozen = names - trainable

    assert trainable <= names
    assert trainable | frozen == names and not trainable & frozen
    if not train_batchnorm:
        assert not {layer.qualified_name for layer in layers if layer.is_batchnorm} & trainable


@given(case=layer_stacks_with_rules(), train_batchnorm=st.booleans())
@example(case=(HUNDRED, UnfreezeFraction(0.07)), train_batchnorm=False)  # 0.07 * 100 == 7.000000000000001
@example(case=(HUNDRED[:25], UnfreezeFraction(0.28)), train_batchnorm=False)  # 0.28 * 25 == 7.000000000000001
@example(case=(HUNDRED[:25], UnfreezeFraction(7 / 25)), train_batchnorm=False)
@example(case=(HUNDRED[:3], UnfreezeFraction(0.01)), train_batchnorm=False)  # Never less than one layer.
@example(case=(MOBILENET_LIKE, UnfreezeFromPrefix("block_1")), train_batchnorm=False)
@example(case=(MOBILENET_LIKE, UnfreezeFromPrefix("Conv_1")), train_batchnorm=True)
def test_each_rule_resolves_to_the_slice_its_docstring_describes(case, train_batchnorm):
    layers, rule = case

    assert trainable_or_nothing(layers, rule, train_batchnorm=train_batchnorm) == expected_trainable(
        layers, rule, train_batchnorm=train_batchnorm
    )


@given(layers=layer_stacks(), data=st.data())
def test_a_prefix_rule_is_the_index_rule_at_its_first_match(layers, data):
    rule = data.draw(rules(layers, kinds=(UnfreezeFromPrefix,)))
    start = freezing.start_index(layers, rule)

    assert start == first_match(layers, rule.prefix)
    assert freezing.resolve(layers, rule, train_batchnorm=True) == freezing.resolve(
        layers, UnfreezeFromIndex(start), train_batchnorm=True
    )


@given(case=layer_stacks_with_counts(), train_batchnorm=st.booleans())
@example(case=(stack("a", "b_bn", "c"), 3), train_batchnorm=False)
@example(case=(stack("a", "b_bn", "c"), 1), train_batchnorm=False)
def test_a_negative_index_unfreezes_the_last_n_layers_as_fastai_freeze_to(case, train_batchnorm):
    layers, n = case
    last = layers[len(layers) - n :]

    trainable = trainable_or_nothing(layers, UnfreezeFromIndex(-n), train_batchnorm=train_batchnorm)

    assert trainable == {layer.qualified_name for layer in last if train_batchnorm or not layer.is_batchnorm}


# --------------------------------------------------------------------------- moving the boundary up


@given(layers=layer_stacks(), data=st.data(), train_batchnorm=st.booleans())
def test_a_larger_index_never_unfreezes_a_layer(layers, data, train_batchnorm):
    n = len(layers)
    lower, upper = sorted(data.draw(st.lists(st.integers(-n, n - 1), min_size=2, max_size=2)), key=lambda i: i % n)

    above = trainable_or_nothing(layers, UnfreezeFromIndex(upper), train_batchnorm=train_batchnorm)
    below = trainable_or_nothing(layers, UnfreezeFromIndex(lower), train_batchnorm=train_batchnorm)

    assert above <= below


@given(
    layers=layer_stacks(),
    fractions=st.lists(st.floats(0, 1, exclude_min=True), min_size=2, max_size=2).map(sorted),
    train_batchnorm=st.booleans(),
)
@example(layers=HUNDRED, fractions=[0.07, 0.0700000001], train_batchnorm=False)
@example(layers=HUNDRED[:7], fractions=[5e-324, 1.0], train_batchnorm=False)
def test_a_smaller_fraction_never_unfreezes_a_layer(layers, fractions, train_batchnorm):
    smaller, larger = fractions

    fewer = trainable_or_nothing(layers, UnfreezeFraction(smaller), train_batchnorm=train_batchnorm)
    more = trainable_or_nothing(layers, UnfreezeFraction(larger), train_batchnorm=train_batchnorm)

    assert fewer <= more


@given(layers=layer_stacks(min_size=2), data=st.data(), train_batchnorm=st.booleans())
def test_a_prefix_that_first_matches_a_later_layer_never_unfreezes_a_layer(layers, data, train_batchnorm):
    prefixes = [data.draw(token_prefixes(data.draw(st.sampled_from(layers)).name)) for _ in range(2)]
    lower, upper = sorted(prefixes, key=lambda prefix: first_match(layers, prefix))

    above = trainable_or_nothing(layers, UnfreezeFromPrefix(upper), train_batchnorm=train_batchnorm)
    below = trainable_or_nothing(layers, UnfreezeFromPrefix(lower), train_batchnorm=train_batchnorm)

    assert above <= below


# --------------------------------------------------------------------------- prefixes and siblings


@given(st.builds(lambda name, cut: name[:cut], layer_names(), st.integers(0, 12)), layer_names())
@example("block_1_", "block_13_expand")
@example("block_1", "block_13_expand")
@example("block_1", "block_1_expand")
@example("block_1_", "block_1_expand")
@example("block6", "block6a_expand_conv")
@example("block6a", "block6a_expand_conv")
@example("block6a_expand_conv", "block6a_expand_conv")
@example("conv", "conv2d")
@example("conv", "convolution")
@example("", "block_1")
def test_prefix_matches_exactly_at_token_boundaries(prefix, name):
    assert freezing.prefix_matches(prefix, name) == starts_at_token_boundary(prefix, name)


@given(name=layer_names(), data=st.data())
def test_a_prefix_of_a_name_matches_it_only_at_a_token_boundary(name, data):
    cut = data.draw(st.integers(1, len(name)))

    assert freezing.prefix_matches(name[:cut], name) == (cut in token_boundaries(name))


@given(
    i=st.integers(1, 30),
    extra_digits=st.text("0123456789", min_size=1, max_size=2),
    sibling_suffixes=st.lists(layer_names(max_tokens=2), min_size=1, max_size=3, unique=True),
    own_suffixes=st.lists(layer_names(max_tokens=2), max_size=3, unique=True),
)
@example(i=1, extra_digits="3", sibling_suffixes=["expand", "expand_BN"], own_suffixes=["expand"])
@example(i=1, extra_digits="0", sibling_suffixes=["expand"], own_suffixes=[])  # block_10 exists, block_1 does not.
def test_a_prefix_never_matches_a_longer_sibling(i, extra_digits, sibling_suffixes, own_suffixes):
    j = f"{i}{extra_digits}"  # block_13 for block_1: its number starts with i's digits.
    siblings = [f"block_{j}_{suffix}" for suffix in sibling_suffixes]
    own = [f"block_{i}_{suffix}" for suffix in own_suffixes]
    # The siblings come first, so a prefix that matched one would start the slice too early.
    layers = stack("stem", *siblings, *own, "top")

    for prefix in (f"block_{i}_", f"block_{i}"):
        assert not any(freezing.prefix_matches(prefix, sibling) for sibling in siblings)
        assert all(freezing.prefix_matches(prefix, name) for name in own)
        if own:
            trainable = freezing.resolve(layers, UnfreezeFromPrefix(prefix), train_batchnorm=True)
            assert trainable == {*own, "top"}
        else:
            with pytest.raises(RuleError, match=re.escape(repr(prefix))):
                freezing.resolve(layers, UnfreezeFromPrefix(prefix))


# --------------------------------------------------------------------------- nested models


@given(case=layer_stacks_with_rules(), data=st.data(), train_batchnorm=st.booleans())
def test_nested_paths_resolve_as_the_flat_stack(case, data, train_batchnorm):
    flat, rule = case
    in_backbone = tuple(LayerInfo(layer.name, ("backbone",), layer.is_batchnorm) for layer in flat)
    split = data.draw(nestings(flat))

    resolved = [
        trainable_or_nothing(variant, rule, train_batchnorm=train_batchnorm) for variant in (flat, in_backbone, split)
    ]

    assert plain_names(resolved[1]) == plain_names(resolved[2]) == resolved[0]
    assert resolved[1] <= {layer.qualified_name for layer in in_backbone}
    assert resolved[2] <= {layer.qualified_name for layer in split}


# --------------------------------------------------------------------------- the BatchNorm switch


@given(case=layer_stacks_with_rules())
@example(case=(MOBILENET_LIKE, UnfreezeFromPrefix("block_13_")))
@example(case=(stack("a", "b_bn", "c_bn"), UnfreezeFromIndex(1)))  # Only BatchNorm in the slice.
def test_train_batchnorm_adds_exactly_the_batchnorm_layers_of_the_slice(case):
    layers, rule = case

    with_batchnorm = freezing.resolve(layers, rule, train_batchnorm=True)
    without = trainable_or_nothing(layers, rule, train_batchnorm=False)

    assert without <= with_batchnorm
    batchnorm_in_slice = {layer.qualified_name for layer in documented_slice(layers, rule) if layer.is_batchnorm}
    assert with_batchnorm - without == batchnorm_in_slice


# --------------------------------------------------------------------------- rules that match nothing


@given(layers=layer_stacks(), prefix=st.one_of(layer_names(), st.text(max_size=12)))
@example(layers=MOBILENET_LIKE, prefix="blok_12")
@example(layers=MOBILENET_LIKE, prefix="block_1_expan")  # Cut inside a token.
@example(layers=MOBILENET_LIKE, prefix="block_3")
@example(layers=stack("block_10_expand", "block_11_expand"), prefix="block_1")
def test_a_prefix_that_matches_nothing_raises_with_the_prefix(layers, prefix):
    assume(first_match(layers, prefix) is None)

    with pytest.raises(RuleError) as info:
        freezing.resolve(layers, UnfreezeFromPrefix(prefix), train_batchnorm=True)

    assert info.value.received == prefix
    assert f"Received: unfreeze_from={prefix!r}" in str(info.value)


def test_a_typo_in_a_prefix_is_answered_with_the_closest_real_prefixes():
    with pytest.raises(RuleError) as info:
        freezing.resolve(MOBILENET_LIKE, UnfreezeFromPrefix("blok_12"))

    assert "'block_12_'" in str(info.value)
    assert str(info.value).endswith("Received: unfreeze_from='blok_12'")


@given(layers=layer_stacks(min_size=0, max_size=10), beyond=st.integers(0, 10**6), below=st.booleans())
@example(layers=stack("a", "b"), beyond=0, below=False)  # index == n
@example(layers=stack("a", "b"), beyond=0, below=True)  # index == -n - 1
@example(layers=(), beyond=0, below=False)
def test_an_index_out_of_range_raises_with_the_index(layers, beyond, below):
    n = len(layers)
    index = -n - 1 - beyond if below else n + beyond

    with pytest.raises(RuleError) as info:
        freezing.resolve(layers, UnfreezeFromIndex(index), train_batchnorm=True)

    assert info.value.received == index
    assert f"Received: unfreeze_from={index}" in str(info.value)
    assert f"for {n} layers" in str(info.value)


@given(layers=layer_stacks(), keep=st.integers(0, 2**40 - 1), unknown=layer_names(), position=st.integers(0, 40))
@example(layers=MOBILENET_LIKE, keep=0b110, unknown="block_1_expand_bn", position=0)  # Names are case-sensitive.
def test_an_unknown_layer_name_raises_with_the_name(layers, keep, unknown, position):
    assume(unknown not in {layer.name for layer in layers})
    names = [layer.name for i, layer in enumerate(layers) if keep >> i & 1]  # Some known names too...
    names.insert(position % (len(names) + 1), unknown)  # ...and the unknown one anywhere among them.

    with pytest.raises(RuleError) as info:
        freezing.resolve(layers, UnfreezeLayers(tuple(names)), train_batchnorm=True)

    assert info.value.received == unknown
    assert f"Received: unfreeze_layers={unknown!r}" in str(info.value)


@given(
    layers=layer_stacks(),
    fraction=st.one_of(st.floats(max_value=0), st.floats(min_value=1, exclude_min=True), st.just(math.nan)),
)
@example(layers=HUNDRED[:10], fraction=1.5)  # Once the top 5 of 10 layers, silently.
@example(layers=HUNDRED[:10], fraction=0.0)
@example(layers=HUNDRED[:10], fraction=-0.5)
def test_a_fraction_outside_zero_to_one_raises_with_the_fraction(layers, fraction):
    with pytest.raises(RuleError) as info:
        freezing.resolve(layers, UnfreezeFraction(fraction), train_batchnorm=True)

    assert f"Received: unfreeze_fraction={fraction!r}" in str(info.value)


@given(layers=layer_stacks(), data=st.data())
def test_a_slice_of_batchnorm_layers_only_raises_unless_batchnorm_trains(layers, data):
    only_batchnorm = tuple(LayerInfo(layer.name, layer.parents, True) for layer in layers)
    rule = data.draw(rules(only_batchnorm, kinds=(*SLICE_KINDS, UnfreezeLayers)))

    with pytest.raises(RuleError) as info:
        freezing.resolve(only_batchnorm, rule, train_batchnorm=False)

    assert "train_batchnorm=True" in str(info.value)
    received = True if isinstance(rule, UnfreezeAll) else next(iter(vars(rule).values()))
    assert str(info.value).endswith(f"={received!r}")
    assert freezing.resolve(only_batchnorm, rule, train_batchnorm=True) == expected_trainable(
        only_batchnorm, rule, train_batchnorm=True
    )


@pytest.mark.parametrize(
    "rule",
    [
        UnfreezeAll(),
        UnfreezeFromIndex(0),
        UnfreezeFromIndex(-1),
        UnfreezeFraction(1.0),
        UnfreezeFromPrefix("block"),
        UnfreezeLayers(("a",)),
    ],
    ids=repr,
)
def test_every_rule_but_freeze_all_raises_on_an_empty_stack(rule):
    with pytest.raises(RuleError):
        freezing.resolve((), rule, train_batchnorm=True)


@given(layers=layer_stacks(min_size=0), train_batchnorm=st.booleans())
def test_freeze_all_freezes_everything_and_never_raises(layers, train_batchnorm):
    assert freezing.resolve(layers, FreezeAll(), train_batchnorm=train_batchnorm) == frozenset()


# --------------------------------------------------------------------------- a rule that selects no weights


def weightless(layers, rule, *, train_batchnorm: bool) -> bool:
    """What "selects no weights" means: it makes some layers trainable, each known to hold no weights."""
    selected = [layer for layer in documented_slice(layers, rule) if train_batchnorm or not layer.is_batchnorm]
    return bool(selected) and all(layer.has_weights is False for layer in selected)


@given(
    case=layer_stacks_with_rules(kinds=(*SLICE_KINDS, UnfreezeLayers)), data=st.data(), train_batchnorm=st.booleans()
)
def test_a_rule_raises_selects_no_weights_exactly_when_every_trainable_layer_has_none(case, data, train_batchnorm):
    layers, rule = case
    layers = data.draw(weighted(layers))
    expected = weightless(layers, rule, train_batchnorm=train_batchnorm)
    selected = [layer for layer in documented_slice(layers, rule) if train_batchnorm or not layer.is_batchnorm]
    if not selected:
        return  # the BatchNorm-only slice: its own error (see test_a_slice_of_batchnorm_layers_only_raises...)
    if expected:
        with pytest.raises(RuleError, match="it selects no weights, only ") as excinfo:
            freezing.resolve(layers, rule, train_batchnorm=train_batchnorm)
        assert excinfo.value.received == freezing._value(rule)
    else:
        trainable = freezing.resolve(layers, rule, train_batchnorm=train_batchnorm)
        assert trainable == expected_trainable(layers, rule, train_batchnorm=train_batchnorm)


@given(layers=layer_stacks(), data=st.data())
def test_has_weights_never_changes_what_a_rule_resolves_to_when_it_resolves(layers, data):
    """Weights only add the "selects no weights" error: where a rule resolves, unknown and known agree."""
    rule = data.draw(rules(layers))
    known = data.draw(weighted(layers))
    try:
        with_weights = freezing.resolve(known, rule, train_batchnorm=True)
    except RuleError:
        return
    assert with_weights == freezing.resolve(layers, rule, train_batchnorm=True)
    assert known == layers  # `has_weights` takes no part in equality


def test_a_network_ending_in_relu_unfrozen_from_its_last_layer_selects_no_weights():
    layers = (
        LayerInfo("conv", has_weights=True),
        LayerInfo("bn", (), True, True),
        LayerInfo("relu", has_weights=False),
    )
    with pytest.raises(RuleError) as excinfo:
        freezing.resolve(layers, UnfreezeFromIndex(-1))
    assert str(excinfo.value) == (
        "`unfreeze_from` must match layers (layers with weights; it selects no weights, only 'relu'). "
        "Received: unfreeze_from=-1"
    )
    assert freezing.resolve(layers, UnfreezeFromIndex(-2), train_batchnorm=True) == {"bn", "relu"}


def test_weightless_selection_names_the_layers():
    layers = (
        LayerInfo("conv", has_weights=True),
        LayerInfo("relu", has_weights=False),
        LayerInfo("add", has_weights=False),
    )
    assert freezing.weightless_selection(layers[1:], frozenset({"relu", "add"})) == ["relu", "add"]
    assert freezing.weightless_selection(layers, frozenset({"conv", "relu"})) == []
    assert freezing.weightless_selection((LayerInfo("pool"),), frozenset({"pool"})) == []  # unknown: not an error
    with pytest.raises(RuleError, match=r"it selects no weights, only 'relu', 'add'"):
        freezing.resolve(layers, UnfreezeFromIndex(-2))


# --------------------------------------------------------------------------- tiny Keras models


def _tiny_flat(keras):
    """Stem, two blocks with BatchNorm and a residual add, pooled logits: 10 leaf layers."""
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    y = keras.layers.Conv2D(4, 1, name="block_1_expand")(x)
    y = keras.layers.BatchNormalization(name="block_1_expand_BN")(y)
    x = keras.layers.Add(name="block_1_add")([x, y])
    x = keras.layers.Conv2D(4, 1, name="block_13_expand")(x)
    x = keras.layers.BatchNormalization(name="block_13_expand_BN")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(x), name="flat")


def _tiny_nested(keras):
    """A base model holding a nested Sequential stage, inside a full model with a Sequential head."""
    stage = keras.Sequential(
        [
            keras.Input((8, 8, 4)),
            keras.layers.Conv2D(4, 1, name="block_13_expand"),
            keras.layers.BatchNormalization(name="block_13_expand_BN"),
        ],
        name="stage",
    )
    inputs = keras.Input((8, 8, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, padding="same", name="block_1_expand")(inputs)
    x = keras.layers.BatchNormalization(name="block_1_expand_BN")(x)
    x = keras.layers.ReLU(name="block_13_relu")(stage(x))
    base = keras.Model(inputs, x, name="base")
    head = keras.Sequential(
        [
            keras.Input((8, 8, 4)),
            keras.layers.GlobalAveragePooling2D(name="pool"),
            keras.layers.Dense(2, name="logits"),
        ],
        name="head",
    )
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    return keras.Model(inputs, head(base(x, training=False)), name="nested")


NESTED_LEAVES = [
    "rescale",
    "base/block_1_expand",
    "base/block_1_expand_BN",
    "base/stage/block_13_expand",
    "base/stage/block_13_expand_BN",
    "base/block_13_relu",
    "head/pool",
    "head/logits",
]


@pytest.fixture(scope="module")
def tiny_models():
    import keras

    return {"flat": _tiny_flat(keras), "nested": _tiny_nested(keras)}


def all_layers(model):
    """Every layer below `model`, containers and leaves, outermost first (input layers included)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from all_layers(layer)


def chosen_weights(model, trainable):
    """The trainable weights of the leaf layers in `trainable`, found layer by layer."""
    leaves = freezing.keras_layers(model)
    return [v for info, layer in leaves if info.qualified_name in trainable for v in layer.trainable_weights]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["flat", "nested"])
@ON_KERAS_MODELS
@given(data=st.data())
def test_applying_a_rule_twice_changes_nothing_whatever_the_flags_before(tiny_models, name, data):
    model = tiny_models[name]
    # Any flags on any container or leaf, set in any order (a container's setter recurses).
    for layer in data.draw(st.permutations([model, *all_layers(model)])):
        layer.trainable = data.draw(st.booleans())
    infos = [info for info, _ in freezing.keras_layers(model)]
    rule, train_batchnorm = data.draw(rules(infos)), data.draw(st.booleans())
    flags_before = freezing.trainable_state(model)
    try:
        expected = freezing.resolve(infos, rule, train_batchnorm=train_batchnorm)
    except RuleError:
        with pytest.raises(RuleError):
            freezing.apply(model, rule, train_batchnorm=train_batchnorm)
        assert freezing.trainable_state(model) == flags_before  # A rule that fails changes no flag.
        return

    first = freezing.apply(model, rule, train_batchnorm=train_batchnorm)
    state, weights = freezing.trainable_state(model), [id(v) for v in model.trainable_weights]
    second = freezing.apply(model, rule, train_batchnorm=train_batchnorm)

    assert first == second == expected
    assert freezing.trainable_state(model) == state == {q: q in expected for q in state}
    assert [id(v) for v in model.trainable_weights] == weights
    assert sorted(weights) == sorted(id(v) for v in chosen_weights(model, expected))


@pytest.mark.slow
def test_keras_layers_flattens_nested_models_in_order(tiny_models):
    model = tiny_models["nested"]
    base, head = model.get_layer("base"), model.get_layer("head")

    leaves = list(freezing.keras_layers(model))

    assert [info.qualified_name for info, _ in leaves] == NESTED_LEAVES
    assert [info.is_batchnorm for info, _ in leaves] == ["_BN" in name for name in NESTED_LEAVES]
    assert [layer for _, layer in leaves[1:6]] == [layer for _, layer in freezing.keras_layers(base)]
    assert [layer for _, layer in leaves[6:]] == head.layers
    # Every variable of the model belongs to exactly one leaf.
    owned = [id(v) for _, layer in leaves for v in layer.weights]
    assert sorted(owned) == sorted(id(v) for v in model.weights)


@pytest.mark.slow
def test_apply_answers_qualified_names_of_nested_layers(tiny_models):
    rule = UnfreezeFromPrefix("block_13_")

    assert freezing.apply(tiny_models["nested"], rule) == {
        "base/stage/block_13_expand",
        "base/block_13_relu",
        "head/pool",
        "head/logits",
    }
    assert freezing.apply(tiny_models["flat"], rule) == {"block_13_expand", "pool", "logits"}


# --------------------------------------------------------------------------- keras.applications

APPLICATIONS = {
    "MobileNetV2": {"input_shape": (96, 96, 3), "alpha": 0.35},
    "EfficientNetB0": {"input_shape": (64, 64, 3)},
    "ResNet50": {"input_shape": (32, 32, 3)},
}


@pytest.fixture(scope="module", params=sorted(APPLICATIONS))
def application(request):
    """A `keras.applications` architecture without its top, random weights, built once."""
    import keras

    return getattr(keras.applications, request.param)(weights=None, include_top=False, **APPLICATIONS[request.param])


def size(variables) -> int:
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.mark.slow
@ON_KERAS_MODELS
@given(data=st.data())
def test_the_reported_trainable_count_is_the_resolved_layers_weights(application, data):
    from harness.engine import _count  # What the harness reports as `trainable_params`.

    model = application
    leaves = list(freezing.keras_layers(model))
    infos = [info for info, _ in leaves]
    rule = data.draw(rules(infos, kinds=(UnfreezeFromIndex, UnfreezeFraction, UnfreezeFromPrefix)))
    train_batchnorm = data.draw(st.booleans())

    if weightless(infos, rule, train_batchnorm=train_batchnorm):  # e.g. MobileNetV2 unfrozen from its last ReLU
        with pytest.raises(RuleError, match="selects no weights"):
            freezing.apply(model, rule, train_batchnorm=train_batchnorm)
        return
    trainable = freezing.apply(model, rule, train_batchnorm=train_batchnorm)
    reported = _count(list(model.trainable_weights))

    assert trainable == expected_trainable(infos, rule, train_batchnorm=train_batchnorm)
    assert reported == sum(np.prod(w.shape) for w in model.trainable_weights)
    by_layer = [v for info, layer in leaves if info.qualified_name in trainable for v in layer.trainable_weights]
    assert reported == size(by_layer)
    assert reported + _count(list(model.non_trainable_weights)) == size(model.weights)
    non_trainable = {id(v) for v in model.non_trainable_weights}
    for info, layer in leaves:
        if info.qualified_name not in trainable:
            assert not layer.trainable and not layer.trainable_weights, info.qualified_name
        if info.is_batchnorm:
            # Moving statistics are never trained; gamma and beta only with train_batchnorm.
            assert {id(layer.moving_mean), id(layer.moving_variance)} <= non_trainable, info.qualified_name
            if not train_batchnorm:
                assert not layer.trainable and {id(v) for v in layer.weights} <= non_trainable, info.qualified_name


@pytest.mark.slow
def test_a_backbone_inside_a_full_model_is_flattened_in_place(application):
    import keras

    backbone = application
    inputs = keras.Input(backbone.input_shape[1:])
    features = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs, training=False))
    full = keras.Model(inputs, keras.layers.Dense(2, name="logits")(features))

    on_its_own = [info for info, _ in freezing.keras_layers(backbone)]
    inside = [info for info, _ in freezing.keras_layers(full)]

    assert inside == [LayerInfo(i.name, (backbone.name, *i.parents), i.is_batchnorm) for i in on_its_own] + [
        LayerInfo("pool"),
        LayerInfo("logits"),
    ]
    alone = freezing.apply(backbone, UnfreezeFromIndex(-10))
    assert freezing.apply(full, UnfreezeFromIndex(-12)) == {f"{backbone.name}/{q}" for q in alone} | {"pool", "logits"}


def test_apply_refuses_a_rule_that_unfreezes_only_layers_without_weights(tiny_models):
    """At run time too (custom backbones, keras.applications): the base model ends in a ReLU."""
    base = tiny_models["nested"].get_layer("base")
    flags = freezing.trainable_state(base)
    with pytest.raises(RuleError, match=r"it selects no weights, only 'block_13_relu'\)\. Received: unfreeze_from=-1$"):
        freezing.apply(base, UnfreezeFromIndex(-1))
    assert freezing.trainable_state(base) == flags  # and changes no flag
    assert freezing.apply(base, UnfreezeFromIndex(-3)) == {"stage/block_13_expand", "block_13_relu"}
