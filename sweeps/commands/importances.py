"""The params' importances in a report: what fANOVA learns from, and one evaluation for both files.

Kept apart from `report` because Optuna's importance module imports scikit-learn (~3 s, ~70 MB),
which a report without importances, or the trials table alone, never needs."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import optuna
from optuna.importance import BaseImportanceEvaluator, FanovaImportanceEvaluator

# fANOVA's forest grows with the trials it learns from: over 1,000 completed trials it took ~110 MB and
# ~20 s here, more per trial the more there are. Above this many, it learns from a seeded uniform sample.
IMPORTANCE_TRIALS = 500


class EvaluatedOnce(BaseImportanceEvaluator):
    """An evaluator that computes each (study, params, target) once and hands the same importances back."""

    def __init__(self, evaluator: BaseImportanceEvaluator) -> None:
        self._evaluator = evaluator
        self._done: dict[tuple[int, tuple[str, ...] | None, Any], dict[str, float]] = {}

    def evaluate(
        self,
        study: optuna.Study,
        params: list[str] | None = None,
        *,
        target: Callable[[optuna.trial.FrozenTrial], float] | None = None,
    ) -> dict[str, float]:
        key = (id(study), None if params is None else tuple(params), target)
        if key not in self._done:
            self._done[key] = self._evaluator.evaluate(study, params, target=target)
        return dict(self._done[key])


def importance_sample(study: optuna.Study, limit: int | None = None) -> tuple[optuna.Study, str]:
    """The study the importances are learnt from, and the plot's title that says which trials it holds:
    all completed trials, or a seeded uniform sample of `limit` of them."""
    limit = IMPORTANCE_TRIALS if limit is None else limit
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(completed) <= limit:
        return study, "Hyperparameter Importances"
    chosen = sorted(random.Random(0).sample(completed, limit), key=lambda t: t.number)
    sample = optuna.create_study(directions=study.directions)  # in memory, read by the plots only
    if study.metric_names:
        sample.set_metric_names(list(study.metric_names))
    sample.add_trials(chosen)
    return sample, f"Hyperparameter Importances (fANOVA on a seeded sample of {limit} of {len(completed)} completed trials)"


def evaluated_once() -> EvaluatedOnce:
    return EvaluatedOnce(FanovaImportanceEvaluator(seed=0))  # seeded: the same trials rank the same
