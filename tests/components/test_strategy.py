import logging

import tensorflow as tf

from flowers.components.strategy import choose_strategy


def test_cpu_machine_gets_the_default_strategy(monkeypatch, caplog):
    monkeypatch.delenv("TPU_NAME", raising=False)
    monkeypatch.delenv("KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS", raising=False)
    with caplog.at_level(logging.INFO):
        strategy = choose_strategy()
    assert not tf.config.list_physical_devices("GPU")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert "distribution strategy: _DefaultDistributionStrategy, 1 replica(s) on CPU" in caplog.text
