"""flowers.components: the code TFX components run (Transform, Trainer, Tuner, Evaluator config, gates)."""
