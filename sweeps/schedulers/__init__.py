"""Tune schedulers: the built-in factories, the epochs they stop and pause at, and PBT in one module."""
