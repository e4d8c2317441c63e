import numpy as np
import pytest
import tf_keras as keras

from flowers.components import model as model_lib
from flowers.pipeline import features
from flowers.pipeline.config import TrainingConfig

SMALL = TrainingConfig(image_size=96)


def test_pooling_model_outputs_class_probabilities_and_freezes_backbone():
    model = model_lib.build_model(SMALL)
    probs = model.predict(np.zeros((2, 96, 96, 3), np.float32), verbose=0)
    assert probs.shape == (2, features.NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert not model_lib.backbone_of(model).trainable
    # Only the softmax head trains in the first phase.
    assert [w.name.split("/")[0] for w in model.trainable_weights] == [features.PROBABILITIES_OUTPUT] * 2


def test_flatten_head_is_the_labs_recipe():
    model = model_lib.build_model(TrainingConfig(image_size=96, head="flatten", augment=False))
    assert any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


def test_fine_tuning_unfreezes_the_top_but_not_batch_norm():
    model = model_lib.build_model(SMALL)
    model_lib.unfreeze_top(model, SMALL)
    backbone = model_lib.backbone_of(model)
    trainable = [layer for layer in backbone.layers if layer.trainable]
    assert trainable and all(layer in backbone.layers[-SMALL.fine_tune_layers:] for layer in trainable)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in trainable)
    assert model.optimizer.learning_rate.numpy() == pytest.approx(SMALL.fine_tune_learning_rate)


def test_augmentation_is_inactive_at_inference():
    layers = model_lib.augmentation(SMALL)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(layers(x, training=False).numpy(), x)
    assert not np.array_equal(layers(x, training=True).numpy(), x)


def test_unknown_head_is_refused():
    with pytest.raises(ValueError, match="unknown head"):
        model_lib.build_model(TrainingConfig(head="mlp"))
