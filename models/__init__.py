"""Keras model builders. `models.plan` is pure Python (no Keras): shapes, parameter counts, FLOPs."""
