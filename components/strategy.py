"""Pick the distribution strategy for the hardware the Trainer finds."""

from __future__ import annotations

import logging

import tensorflow as tf

from flowers import progress

log = logging.getLogger(__name__)


def choose_strategy(tpu: str = "") -> tf.distribute.Strategy:
    """TPUStrategy when a TPU resolves, MirroredStrategy over visible GPUs,
    else the default (single-device) strategy. `tpu` is a TPU name or address,
    "local" on a TPU VM, or empty to use $TPU_NAME."""
    strategy = _tpu_strategy(tpu)
    if strategy is None and tf.config.list_physical_devices("GPU"):
        strategy = tf.distribute.MirroredStrategy()
    if strategy is None:
        strategy = tf.distribute.get_strategy()
    devices = [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"]
    progress.say(
        f"distribution strategy: {type(strategy).__name__}, {strategy.num_replicas_in_sync} replica(s) "
        f"on {', '.join(devices)}"
    )
    return strategy


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy | None:
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
    except (ValueError, ImportError) as e:  # no TPU named or discoverable here
        log.debug("no TPU: %s", e)
        return None
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
