"""Optuna's own suites run against the product's storage and TPE (README.md): all marked `optuna_suite`."""

from pathlib import Path

import pytest

# Optuna's shared test cases live in the installed package: let pytest rewrite their asserts (as Optuna's conftest does).
pytest.register_assert_rewrite("optuna.testing.pytest_samplers", "optuna.testing.pytest_storages")

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.optuna_suite)
