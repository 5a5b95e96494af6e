"""Optuna study storages: their URLs, opening and closing (one owner), drivers, and the driver's in-memory study storage."""
