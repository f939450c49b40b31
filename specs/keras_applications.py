"""The same ELPV task with a `keras.applications` backbone and Keras's own ImageNet weights.

Keras downloads these weights on first use. Without network access and without the file in
the Keras cache (~/.keras/models), the experiment is skipped with a reason that names the file
and where to put it. The accuracy floors of this spec were not measured here (the weights cannot
be fetched on our machines), so it asserts the structural invariants only.
"""

from harness import (
    backbone,
    classifier_head,
    experiment,
    feature_extraction,
    fine_tune,
    frozen_weights_unchanged,
    loss_decreases,
    tfds_dataset,
    trainable_params,
    trainable_weights_changed,
)

experiment(
    name="elpv_binary_mobilenet_v2",
    dataset=tfds_dataset("elpv", label_key="defective", image_size=160, test_split="test"),
    backbone=backbone("MobileNetV2", weights="imagenet"),
    head=classifier_head(dropout_rate=0.2),
    phases=[
        feature_extraction(epochs=10, learning_rate=1e-3),
        fine_tune(unfreeze_from="block_13_", epochs=5, learning_rate=1e-5),
    ],
    expect=[
        frozen_weights_unchanged(),
        trainable_weights_changed(),
        loss_decreases(),
        trainable_params(feature_extraction=2_562, fine_tune=1_665_922),
    ],
)
