"""Infeasible proposals: checked by the driver's searcher, recorded, told to the sampler, redrawn.

A proposal whose plan (models.plan.plan_conv2d: shapes, parameters, FLOPs, no Keras) rejects it
never reaches a worker and does not count towards n_trials. It is still one Optuna trial (PRUNED,
user attrs `outcome`=INFEASIBLE and its reason) and one MLflow run, as every proposal is, and the
sampler is told through Optuna's constraint (`trial.set_constraint`, feasible at 0 or less):

- tpe (c-TPE): a trial whose constraint is violated is ranked below every feasible one (complete
  or pruned) when TPE splits its history, so it lands in the "above" density and TPE proposes
  away from it; never in "below" (Optuna fills it with the least violating infeasible trials
  while too few feasible ones have finished: the product's TPE does not, samplers.factories);
- gp and nsga2 read constraints only on COMPLETE trials, beside their objective values: a net
  never trained has no objective value, so they learn nothing from it and only redraw;
- random, qmc, cmaes, grid and bruteforce have no feasibility model: they redraw (grid and
  bruteforce never propose a visited point again; once their points are all visited the sweep ends).

Feasible trials get no constraint value: GP refuses COMPLETE trials of which only some carry one
(a warm start's known results carry none), and TPE counts a trial without one as feasible.

Redraws are bounded: `Redraws` raises one ConfigError after `limit` infeasible proposals in a row,
naming the space and the rule that rejected most. Pure: Optuna and the plan only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from models.plan import InfeasibleModel, plan_conv2d
from sweeps.core.errors import ConfigError
from sweeps.core.records import INFEASIBLE_ATTR, INFEASIBLE_KIND_ATTR, OUTCOME_ATTR

CONSTRAINT = "plan"  # the Optuna constraint's key: > 0 when the plan rejects the net
FIELD = "max_infeasible_in_a_row"


@dataclass(frozen=True)
class Rejection:
    kind: str  # the rule (models.plan.KINDS)
    reason: str
    violation: float  # > 0: how far over the rule


def rejection(
    params: Mapping[str, Any],
    input_shape: tuple[int, int, int],
    num_classes: int,
    max_params: int | None = None,
    max_flops: int | None = None,
) -> Rejection | None:
    """Why the plan rejects these params (None: it can be built and is within the budgets)."""
    try:
        plan_conv2d(params, input_shape, num_classes, max_params, max_flops)
    except InfeasibleModel as exc:
        return Rejection(exc.kind, str(exc), max(exc.violation, 1e-9))
    return None


def tell_infeasible(study: optuna.Study, trial: optuna.Trial, rejected: Rejection) -> None:
    """Record a rejected proposal in Optuna as every infeasible trial is recorded (PRUNED, outcome
    INFEASIBLE, its reason), with its constraint value for the samplers that read one."""
    trial.set_user_attr(OUTCOME_ATTR, "INFEASIBLE")
    trial.set_user_attr(INFEASIBLE_ATTR, rejected.reason)
    trial.set_user_attr(INFEASIBLE_KIND_ATTR, rejected.kind)
    trial.set_constraint(CONSTRAINT, rejected.violation)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def violated(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial breaks a constraint (Optuna's rule: a value above 0)."""
    return any(v > 0 for v in trial.constraints.values())


@dataclass
class Redraws:
    """Counts infeasible proposals, in a row and by rule; too many in a row is bad input."""

    limit: int
    space: str  # how the error names the space, e.g. "space (searching blocks, kernel_size, ...)"
    in_a_row: int = 0
    total: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # kind -> its first reason

    def rejected(self, rejected: Rejection) -> None:
        self.in_a_row += 1
        self.total += 1
        self.kinds[rejected.kind] += 1
        self.examples.setdefault(rejected.kind, rejected.reason)
        if self.in_a_row >= self.limit:
            raise self.error()

    def accepted(self) -> None:
        self.in_a_row = 0

    def error(self) -> ConfigError:
        kind, count = self.kinds.most_common(1)[0]
        rest = ", ".join(f"{k} {n}" for k, n in self.kinds.most_common()[1:])
        return ConfigError(
            "space",
            f"the sampler proposed {self.in_a_row} infeasible nets in a row from {self.space}; rejected most:"
            f" {kind} ({count} of {self.total}, e.g. {self.examples[kind]})" + (f"; then {rest}" if rest else ""),
            _fix(kind) + f", or raise {FIELD} (now {self.limit})",
        )


def _fix(kind: str) -> str:
    return {
        "strides_with_dilation": "search strides or dilation_rate, not both above 1 (e.g. space.dilation_rate=1)",
        "kernel_larger_than_input": "allow padding=same, smaller kernels or dilation, or fewer blocks",
        "pooling_leaves_nothing": "use fewer blocks, padding=same, or pooling=none in the deeper blocks",
        "max_params": "raise space.max_params, or search fewer filters, dense units or blocks",
        "max_flops": "raise space.max_flops, or search fewer filters or blocks",
    }.get(kind, "narrow the space to nets that can be built")


def describe_space(searched: Mapping[str, Any], limit: int = 8) -> str:
    names = list(searched)
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"the space searching {shown}" if names else "the space (nothing searched)"


@dataclass
class Proposer:
    """The driver's proposals, feasible ones only: ask the study, run the define-by-run function
    (`suggest(trial)` -> the trial's config), plan it; a rejected one is told (tell_infeasible),
    recorded (`record(trial, config, rejected)`: its MLflow run) and redrawn, at most `limit` in a
    row. The baseline (user attr sweeps.space.BASELINE_ATTR) is the user's model: the space's
    budgets (max_params, max_flops) bound what the search proposes, not it; only a net that
    cannot be built rejects it."""

    model: dict[str, Any]
    fixed: dict[str, Any]
    input_shape: tuple[int, int, int]
    num_classes: int
    max_params: int | None
    max_flops: int | None
    redraws: Redraws
    record: Any = None  # Callable[[optuna.Trial, dict, Rejection], None]; set once the tracking exists

    def check(self, trial: Any, config: Mapping[str, Any]) -> Rejection | None:
        from sweeps.space import BASELINE_ATTR

        baseline = bool(trial.user_attrs.get(BASELINE_ATTR))
        params = {**self.model, **self.fixed, **config}
        return rejection(
            params,
            self.input_shape,
            self.num_classes,
            None if baseline else self.max_params,
            None if baseline else self.max_flops,
        )

    def propose(self, study: optuna.Study, suggest: Any, done: Any = None) -> tuple[optuna.Trial, dict[str, Any]] | None:
        """The next feasible (trial, config); None once `done()` says the sampler has no point left."""
        while True:
            if done is not None and done():
                return None
            trial = study.ask()
            config = suggest(trial)
            found = self.check(trial, config)
            if found is None:
                self.redraws.accepted()
                return trial, config
            if self.record is not None:  # first: it notes its run on the trial, which is still open
                self.record(trial, config, found)
            tell_infeasible(study, trial, found)
            self.redraws.rejected(found)  # raises ConfigError after `limit` in a row

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "record": None}  # Tune pickles its searcher; the record hook holds the tracker
