"""flowers/autograph.py: autograph leaves tf_keras's code alone, and still
converts the project's own."""

import tensorflow as tf
import tf_keras as keras
from tensorflow.python.autograph.impl import conversion

from flowers import autograph


def test_tf_keras_layers_are_not_converted_and_our_code_is():
    autograph.leave_tf_keras_alone()
    autograph.leave_tf_keras_alone()  # once is enough: no second rule
    from tensorflow.python.autograph.core import config

    assert [getattr(r, "_prefix", None) for r in config.CONVERSION_RULES].count(autograph.KERAS_PACKAGE) == 1
    assert conversion.is_allowlisted(keras.layers.Dense(2).call)

    def ours(x):
        return x + 1

    assert not conversion.is_allowlisted(ours)


def test_a_layer_of_ours_with_python_control_flow_still_traces():
    autograph.leave_tf_keras_alone()

    class Clip(keras.layers.Layer):
        def call(self, x):
            if tf.reduce_max(x) > 1.0:  # a tensor condition: needs autograph
                return tf.clip_by_value(x, 0.0, 1.0)
            return x

    model = keras.Sequential([keras.Input((3,)), Clip(), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(tf.constant([[0.5, 2.0, 3.0]]), tf.constant([[1.0]]), verbose=0)
    assert model.predict(tf.constant([[0.5, 2.0, 3.0]]), verbose=0).shape == (1, 1)
