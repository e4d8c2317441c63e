import logging
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from flowers import features
from flowers.components import export, inputs, names
from flowers.components import model as model_lib
from flowers.components.fit import WeightsSnapshot, cosine_rate, final_fit, fit
from flowers.config import TrainingConfig

SMALL = TrainingConfig()
SIZE = 96


def test_pooling_model_outputs_class_probabilities_and_freezes_backbone():
    model = model_lib.build_model(SMALL, SIZE)
    probs = model.predict(np.zeros((2, 96, 96, 3), np.float32), verbose=0)
    assert probs.shape == (2, features.NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not model_lib.backbone_of(model).trainable
    # Only the softmax head trains in the first phase.
    assert [w.name.split("/")[0] for w in model.trainable_weights] == [features.PROBABILITIES_OUTPUT] * 2


def test_flatten_head_is_the_labs_recipe():
    model = model_lib.build_model(TrainingConfig(head="flatten", augment=False), SIZE)
    assert any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


def test_fine_tuning_unfreezes_the_top_but_not_batch_norm():
    model = model_lib.build_model(SMALL, SIZE)
    model_lib.unfreeze_top(model, SMALL)
    backbone = model_lib.backbone_of(model)
    trainable = [layer for layer in backbone.layers if layer.trainable]
    assert trainable and all(layer in backbone.layers[-SMALL.fine_tune_layers :] for layer in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(SMALL.fine_tune_learning_rate)


def test_a_fine_tuned_models_weights_warm_start_a_new_one(tmp_path, caplog):
    """Fine-tuning unfreezes part of the backbone, which reorders HDF5's
    per-layer weights; a new model (frozen, as built) must still load them."""
    tuned = model_lib.build_model(SMALL, SIZE)
    model_lib.unfreeze_top(tuned, SMALL)
    for w in tuned.weights:  # not ImageNet's: loading must change the new model
        w.assign(w + 0.01)
    path = str(tmp_path / export.WEIGHTS_FILE)
    export.save_weights(tuned, path)
    fresh = model_lib.build_model(SMALL, SIZE)
    with caplog.at_level(logging.INFO):
        export.warm_start(fresh, path)
    assert "warm start: from" in caplog.text
    for a, b in zip(tuned.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.name)


def test_augmentation_is_inactive_at_inference():
    layers = model_lib.augmentation(SMALL)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(layers(x, training=False).numpy(), x)
    assert not np.array_equal(layers(x, training=True).numpy(), x)


def test_augmentation_keeps_normalised_images_in_their_range():
    # keras.layers.RandomContrast clips to [0, 255]: on [-1, 1] images it
    # would zero every negative value.
    dark = np.random.default_rng(0).uniform(-1, -0.2, (4, 32, 32, 3)).astype(np.float32)
    out = model_lib.augmentation(SMALL)(dark, training=True).numpy()
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert (out < 0).mean() > 0.95
    assert abs(out.mean() - dark.mean()) < 0.25


def test_augmentation_parts_can_be_turned_off():
    plain = TrainingConfig(augment_rotation=0, augment_zoom=0, augment_color=0, augment_degrade=0)
    assert [type(layer).__name__ for layer in model_lib.augmentation(plain).layers] == ["RandomFlip"]
    assert len(model_lib.augmentation(TrainingConfig()).layers) == 6
    assert type(model_lib.augmentation(TrainingConfig()).layers[-1]).__name__ == "RandomDegrade"


def test_degradation_is_training_only_and_keeps_the_range():
    layer = model_lib.RandomDegrade(1.0, seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x)
    y = layer(x, training=True).numpy()
    assert y.shape == x.shape and y.min() >= -1.0 and y.max() <= 1.0
    assert np.abs(y - x).mean() > 0.05


def test_images_are_normalised_inside_the_model():
    model = model_lib.build_model(TrainingConfig(augment=False), SIZE)
    normalize = model.get_layer("normalize")
    out = normalize(np.array([[[[0.0, 127.5, 255.0]]]], np.float32)).numpy()
    np.testing.assert_allclose(out.ravel(), [-1.0, 0.0, 1.0])


def test_head_only_snapshot_is_restored_after_fine_tuning():
    model = model_lib.build_model(SMALL, SIZE)
    before = [v.numpy() for v in model.weights]
    snapshot = WeightsSnapshot(model)
    model_lib.unfreeze_top(model, SMALL)
    for v in model.trainable_weights:
        v.assign_add(tf.ones_like(v))
    snapshot.restore(model)
    for v, value in zip(model.weights, before):
        np.testing.assert_array_equal(v.numpy(), value)


def eight_random_images() -> tf.data.Dataset:
    """Two batches of four random images, every class present."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (8, SIZE, SIZE, 3)).astype(np.float32)
    y = tf.one_hot(np.arange(8) % features.NUM_CLASSES, features.NUM_CLASSES)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(4)


@pytest.mark.slow  # trains a model
def test_two_phase_fit_then_a_final_fit_with_the_epochs_and_learning_rates_validation_chose(tmp_path):
    cfg = TrainingConfig(batch_size=4, epochs=2, fine_tune_epochs=1, early_stopping_patience=2)
    data = eight_random_images()
    model = model_lib.build_model(cfg, SIZE)
    start = WeightsSnapshot(model)
    history = fit(model, data, data, cfg, str(tmp_path))
    assert history["phase"] == ["head", "head", "fine_tune"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
        assert len(history[key]) == 3, key
    assert any(name.startswith("events.out.tfevents") for _, _, files in os.walk(tmp_path) for name in files)
    chosen = history[names.CHOSEN_EPOCHS_HISTORY]
    head = history["val_accuracy"][:2]
    assert chosen["head"]["epochs"] == head.index(max(head)) + 1
    assert chosen["head"]["learning_rates"] == history["lr"][: chosen["head"]["epochs"]]

    record = final_fit(model, start, data, 8, cfg, chosen)
    assert (record["head_epochs"], record["fine_tune_epochs"]) == (
        chosen["head"]["epochs"],
        chosen["fine_tune"]["epochs"],
    )
    assert len(record["loss"]) == len(record["epoch_seconds"]) == sum(p["epochs"] for p in chosen.values())
    assert record["lr"] == pytest.approx(chosen["head"]["learning_rates"] + chosen["fine_tune"]["learning_rates"])
    # Fine-tuning, when validation kept it, leaves the backbone's top trainable.
    assert model_lib.backbone_of(model).trainable == (chosen["fine_tune"]["epochs"] > 0)


def test_the_cosine_schedule_warms_up_then_decays_towards_a_tenth():
    rates = [cosine_rate(epoch, 10, 1e-4) for epoch in range(10)]
    assert rates[0] == pytest.approx(5e-5) and rates[1] == pytest.approx(1e-4)
    assert all(a > b for a, b in zip(rates[1:], rates[2:]))
    assert 1e-5 < rates[-1] < 1.3e-5 and cosine_rate(10, 10, 1e-4) == pytest.approx(1e-5)
    assert cosine_rate(0, 1, 1e-4) == pytest.approx(5e-5)


@pytest.mark.slow  # trains a model
def test_fine_tuning_on_the_cosine_schedule_logs_its_rates(tmp_path):
    cfg = TrainingConfig(batch_size=4, epochs=1, fine_tune_epochs=3, fine_tune_schedule="cosine")
    data = eight_random_images()
    history = fit(model_lib.build_model(cfg, SIZE), data, data, cfg, str(tmp_path))
    fine_tune = [lr for lr, phase in zip(history["lr"], history["phase"]) if phase == "fine_tune"]
    assert fine_tune == pytest.approx([cosine_rate(e, 3, 1e-4) for e in range(len(fine_tune))])


def test_mixup_blends_each_example_with_another_keeping_the_larger_share():
    rng = np.random.default_rng(3)
    images = tf.constant(rng.uniform(0, 255, (8, 4, 4, 3)), tf.float32)
    labels = tf.one_hot(np.arange(8) % features.NUM_CLASSES, features.NUM_CLASSES)
    mixed, soft = inputs.mixup(images, labels, 0.4)
    soft = soft.numpy()
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    own = soft[np.arange(8), np.arange(8) % features.NUM_CLASSES]
    assert (own >= 0.5 - 1e-6).all()
    assert mixed.shape == images.shape
    assert float(tf.reduce_min(mixed)) >= 0.0 and float(tf.reduce_max(mixed)) <= 255.0
    # Off by default: training batches are the images and labels as they were.
    assert TrainingConfig().mixup == 0.0


def test_cutmix_pastes_a_box_of_another_example_and_mixes_labels_by_its_area():
    n = features.NUM_CLASSES  # one example per class: a label names its image
    images = tf.constant(np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 16, 12, 3), np.float32))
    labels = tf.one_hot(np.arange(n), n)
    tf.random.set_seed(7)
    pasted, soft = inputs.cutmix(images, labels, 1.0)
    pasted, soft = pasted.numpy(), soft.numpy()
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    for i in range(n):
        values, counts = np.unique(pasted[i, :, :, 0], return_counts=True)
        assert len(values) <= 2 and (pasted[i] == pasted[i, :, :, :1]).all()  # whole pixels, one box
        shares = dict(zip(values.astype(int), counts / counts.sum()))
        for source, share in shares.items():
            assert soft[i, source] == pytest.approx(share, abs=1e-6) or (source == i and len(shares) == 1)
        if len(shares) == 2:  # the pasted part is a rectangle
            rows, cols = np.nonzero(pasted[i, :, :, 0] != i)
            assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert not np.allclose(soft, labels.numpy())  # some box was pasted
    assert TrainingConfig().cutmix == 0.0


def test_train_and_validation_combine_into_one_shuffled_set_each_example_once():
    cfg = TrainingConfig(batch_size=4)

    def split(first: int, count: int) -> inputs.Split:
        images = (
            np.full((count, 2, 2, 3), 0, np.uint8)
            + np.arange(first, first + count, dtype=np.uint8)[:, None, None, None]
        )
        decoded = tf.data.Dataset.from_tensor_slices((images, np.zeros(count, np.int64)))
        return inputs.Split(decoded.batch(4), count, decoded)

    both = inputs.combined(split(0, 7), split(7, 5), cfg)
    assert both.count == 12
    seen = [int(v) for images, _ in both.dataset for v in images[:, 0, 0, 0].numpy()]
    assert sorted(seen) == list(range(12)) and seen != list(range(12))


def test_one_iterator_keeps_epochs_whole_passes_in_a_new_order():
    """Keras reads `steps` batches per epoch from one iterator: each epoch is
    every example once, reshuffled, and the last batch may be short."""
    from flowers.components.fit import one_iterator

    batches = tf.data.Dataset.range(10).shuffle(10, seed=1, reshuffle_each_iteration=True).batch(4)
    repeated, steps = one_iterator(batches, 10, 4)
    assert steps == 3
    unrepeated, no_steps = one_iterator(batches, None, 4)
    assert no_steps is None and unrepeated.cardinality() == 3
    # No autotuning thread, whose end an iterator's destructor would wait for.
    assert repeated.options().autotune.enabled is False and unrepeated.options().autotune.enabled is False
    iterator = iter(repeated)
    epochs = [[int(x) for _ in range(steps) for x in next(iterator)] for _ in range(3)]
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) > 1
