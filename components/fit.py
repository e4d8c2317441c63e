"""Two-phase fitting: the head on a frozen backbone, then the backbone's top
at a lower learning rate; early stopping on validation, progress lines; then
(`final_fit`) the same schedule again on train + validation."""

from __future__ import annotations

import math
import time

import tensorflow as tf
import tf_keras as keras

from flowers import progress
from flowers.components import model as model_lib
from flowers.components import names
from flowers.config import TrainingConfig


def fit(
    model: keras.Model,
    train: tf.data.Dataset,
    val: tf.data.Dataset,
    cfg: TrainingConfig,
    log_dir: str,
    train_examples: int | None = None,
) -> dict:
    """Head-only phase, then fine-tuning of the backbone's top; the merged history.

    Each phase stops early and keeps its best epoch by eval accuracy; if
    fine-tuning never beats the head-only model, the head-only weights stay.
    Given `train_examples`, each phase reads `train` through one iterator
    (`one_iterator`).
    """
    timer = EpochTimer()
    train, steps = one_iterator(train, train_examples, cfg.batch_size)
    val = without_autotune_thread(val)

    def callbacks(phase: str, first_epoch: int = 0):
        stop = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=cfg.early_stopping_patience, restore_best_weights=True
        )
        if phase == "fine_tune" and cfg.fine_tune_schedule == "cosine":
            rate = keras.callbacks.LearningRateScheduler(
                lambda epoch, lr: cosine_rate(epoch - first_epoch, cfg.fine_tune_epochs, cfg.fine_tune_learning_rate)
            )
        else:
            rate = keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss", factor=0.3, patience=max(1, cfg.early_stopping_patience - 1)
            )
        return stop, [
            stop,
            rate,
            keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"),
            timer,
            EpochReport(phase, timer),
        ]

    stop, first_callbacks = callbacks("head")
    first = model.fit(
        train, validation_data=val, epochs=cfg.epochs, steps_per_epoch=steps, callbacks=first_callbacks, verbose=2
    )
    _report_stop("head", stop, first)
    history = {k: list(map(float, v)) for k, v in first.history.items()}
    head_only_kept = False
    if cfg.fine_tune_epochs > 0 and cfg.fine_tune_layers > 0:
        head_only = WeightsSnapshot(model)
        model_lib.unfreeze_top(model, cfg)
        done = len(first.epoch)
        stop, second_callbacks = callbacks("fine_tune", done)
        second = model.fit(
            train,
            validation_data=val,
            initial_epoch=done,
            epochs=done + cfg.fine_tune_epochs,
            steps_per_epoch=steps,
            callbacks=second_callbacks,
            verbose=2,
        )
        _report_stop("fine_tune", stop, second)
        for k, v in second.history.items():
            history.setdefault(k, []).extend(map(float, v))
        if max(second.history["val_accuracy"]) <= max(first.history.get("val_accuracy", [-1.0])):
            progress.say("fine-tuning did not beat the head-only model: keeping the head-only weights")
            head_only.restore(model)
            head_only_kept = True
    history["epoch_seconds"] = timer.seconds
    history["phase"] = ["head"] * len(first.epoch) + ["fine_tune"] * (len(history["loss"]) - len(first.epoch))
    history[names.CHOSEN_EPOCHS_HISTORY] = chosen_epochs(history, kept_fine_tune=not head_only_kept)
    return history


def one_iterator(batches: tf.data.Dataset, examples: int | None, batch_size: int) -> tuple[tf.data.Dataset, int | None]:
    """(`batches` repeated, steps per epoch) when `examples` is known, so that
    Keras keeps one iterator for all epochs of a phase instead of making one
    per epoch: destroying a spent tf.data iterator waits for its autotuning
    thread, 5-14 s between epochs on the 2,922 photos (docs/performance.md).
    Epochs stay whole passes in a new shuffled order (the shuffle comes
    before the batching and the repeat). Without tf.data's autotuning thread
    either way (`without_autotune_thread`)."""
    batches = without_autotune_thread(batches)
    if not examples:
        return batches, None
    return batches.repeat(), math.ceil(examples / batch_size)


def without_autotune_thread(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` without tf.data's autotuning thread, whose end an iterator's
    destructor waits for: 50 s once between the two phases on the 2,922
    photos, with one iterator per phase (docs/performance.md). The inputs are
    decoded once and cached, so there is little to tune: `AUTOTUNE` map
    parallelism becomes the core count, and prefetching tunes its own
    buffer (its legacy autotuner, which needs no thread)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def cosine_rate(epoch: int, epochs: int, peak: float) -> float:
    """The learning rate of a phase's `epoch` (from 0) of `epochs`: half of
    `peak` in the first (a warm-up: the newly unfrozen layers start from a
    large gradient), `peak` in the second, then down a half cosine that
    would reach `peak / epochs` one epoch after the last."""
    if epoch == 0:
        return peak / 2
    return peak * (0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(1, epochs - 1))) * (1 - 1 / epochs) + 1 / epochs)


def chosen_epochs(history: dict, kept_fine_tune: bool) -> dict:
    """The epochs of each phase up to its best validation accuracy (the
    weights early stopping kept), with the learning rate of each."""
    # Both are in every epoch's logs: validation data is always given, and
    # ReduceLROnPlateau and LearningRateScheduler log the learning rate.
    phases, scores, lrs = history["phase"], history["val_accuracy"], history["lr"]
    chosen = {}
    for phase in ("head", "fine_tune"):
        epochs = [i for i, p in enumerate(phases) if p == phase]
        if not epochs or (phase == "fine_tune" and not kept_fine_tune):
            chosen[phase] = {"epochs": 0, "learning_rates": []}
            continue
        best = max(epochs, key=lambda i: (scores[i], -i))  # the first best, as early stopping keeps it
        used = epochs[: epochs.index(best) + 1]
        chosen[phase] = {"epochs": len(used), "learning_rates": [lrs[i] for i in used]}
    return chosen


def final_fit(
    model: keras.Model,
    start: "WeightsSnapshot",
    data: tf.data.Dataset,
    examples: int,
    cfg: TrainingConfig,
    chosen: dict,
) -> dict:
    """Train again from `start` (the weights before the first fit) on train +
    validation, for the epochs early stopping chose on validation and at the
    learning rates those epochs had. No split is held out here: the eval
    split, which the Evaluator grades, was never in either fit."""
    timer = EpochTimer()
    repeated, steps = one_iterator(data, examples, cfg.batch_size)
    start.restore(model)
    model_lib.freeze_backbone(model, cfg)
    record = {"examples": examples, "head_epochs": 0, "fine_tune_epochs": 0, "loss": [], "accuracy": [], "lr": []}
    progress.say(
        f"final fit on train + validation ({examples} examples): {chosen['head']['epochs']} head + "
        f"{chosen['fine_tune']['epochs']} fine-tuning epoch(s), as chosen on validation"
    )
    done = 0
    for phase in ("head", "fine_tune"):
        epochs, lrs = chosen[phase]["epochs"], chosen[phase]["learning_rates"]
        if epochs == 0:
            continue
        if phase == "fine_tune":
            model_lib.unfreeze_top(model, cfg)
        replay = keras.callbacks.LearningRateScheduler(lambda epoch, lr, lrs=lrs, first=done: lrs[epoch - first])
        fitted = model.fit(
            repeated,
            initial_epoch=done,
            epochs=done + epochs,
            steps_per_epoch=steps,
            callbacks=[replay, timer, EpochReport(f"final {phase}", timer)],
            verbose=2,
        )
        done += epochs
        record[f"{phase}_epochs"] = epochs
        record["loss"] += list(map(float, fitted.history["loss"]))
        record["accuracy"] += list(map(float, fitted.history["accuracy"]))
        record["lr"] += list(map(float, fitted.history["lr"]))
    record["epoch_seconds"] = timer.seconds
    return record


def _report_stop(phase: str, stop: keras.callbacks.EarlyStopping, fitted) -> None:
    scores = fitted.history.get("val_accuracy", [])
    if not scores:
        return
    best = fitted.epoch[scores.index(max(scores))] + 1
    if stop.stopped_epoch:
        progress.say(
            f"{phase}: early stop after epoch {stop.stopped_epoch + 1}; best epoch {best} (val_accuracy "
            f"{max(scores):.4f})"
        )
    else:
        progress.say(f"{phase}: best epoch {best} (val_accuracy {max(scores):.4f})")


class EpochReport(keras.callbacks.Callback):
    """One progress line per epoch: phase, epoch, loss, accuracies, seconds."""

    def __init__(self, phase: str, timer: "EpochTimer"):
        super().__init__()
        self.phase = phase
        self.timer = timer

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        val = f"val_accuracy {logs['val_accuracy']:.4f}  " if "val_accuracy" in logs else ""
        progress.say(
            f"  {self.phase:<9} epoch {epoch + 1:>3}  loss {logs.get('loss', float('nan')):.4f}  "
            f"accuracy {logs.get('accuracy', float('nan')):.4f}  {val}"
            f"{self.timer.seconds[-1] if self.timer.seconds else 0:.1f} s"
        )


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of each epoch (training and its evaluation), across phases."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(round(time.perf_counter() - self._start, 2))


class WeightsSnapshot:
    """A copy of a model's weights, keyed by variable so that restoring never
    depends on the order of model.weights."""

    def __init__(self, model: keras.Model):
        self.values = {v.ref(): v.numpy() for v in model.weights}

    def restore(self, model: keras.Model) -> None:
        for v in model.weights:
            v.assign(self.values[v.ref()])
