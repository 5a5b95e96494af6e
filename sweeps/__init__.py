"""sweeps: hyperparameter sweeps of Keras Conv2D classifiers (Hydra -> Optuna -> Ray Tune -> MLflow)."""
