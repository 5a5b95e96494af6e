"""Optuna samplers: the factories (always seeded explicitly) and the product's bounded TPE."""
