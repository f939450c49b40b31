"""ELPV with every layer of Lite0 fine-tuned: a ceiling for the shipped recipe, beyond CI's budget.

Deitsch et al. fine-tuned their whole ImageNet network with flips and quarter turns among the
augmentations. These two experiments do that with the harness (a head on cached features, then
all of Lite0 at 1e-4 with cosine decay and the 8 `dihedral()` views, BatchNorm in inference mode)
to measure whether the compute the shipped specs save (their cut at `block_11_`) costs accuracy.
About 12 minutes per experiment on 2 cores; not part of `pytest specs/`:

    pytest benchmarks/specs/elpv_full_fine_tune.py --seed S --metrics-json M.json --export-dir E
    python benchmarks/elpv_views.py E --spec benchmarks/specs/elpv_full_fine_tune.py

Figures in benchmarks/README.md ("Toward 0.90 on ELPV").
"""

from harness import (
    classifier_head,
    cosine,
    dihedral,
    early_stopping,
    efficientnet_lite0,
    experiment,
    feature_extraction,
    fine_tune,
    frozen_weights_unchanged,
    tfds_dataset,
    trainable_params,
)

IMAGE_SIZE = 224
PHASES = [
    feature_extraction(epochs=10, learning_rate=1e-3),
    fine_tune(
        unfreeze_all=True,
        epochs=10,
        learning_rate=1e-4,
        schedule=cosine(warmup_epochs=1),
        augmentation=[dihedral()],
        callbacks=[early_stopping(monitor="val_loss", patience=3, restore_best_weights=True)],
    ),
]

experiment(
    name="elpv_binary_full_fine_tune",
    dataset=tfds_dataset("elpv", label_key="defective", image_size=IMAGE_SIZE, test_split="test"),
    backbone=efficientnet_lite0(weights="imagenet"),
    head=classifier_head(dropout_rate=0.2),
    phases=PHASES,
    expect=[frozen_weights_unchanged(), trainable_params(feature_extraction=2_562, fine_tune=3_331_554)],
)

experiment(
    name="elpv_severity_full_fine_tune",
    dataset=tfds_dataset("elpv", label_key="label", image_size=IMAGE_SIZE, test_split="test"),
    backbone=efficientnet_lite0(weights="imagenet"),
    head=classifier_head(dropout_rate=0.2),
    phases=PHASES,
    expect=[frozen_weights_unchanged(), trainable_params(feature_extraction=5_124, fine_tune=3_334_116)],
)
