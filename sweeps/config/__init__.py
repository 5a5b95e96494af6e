"""The settings: dataclasses, Hydra composition, key checks, validation, and the saved config that resume reads."""
