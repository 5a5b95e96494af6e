"""Re-vendors Optuna's tests into this folder from an Optuna checkout (README.md says which and why).

    python -m tests.optuna_suites.vendor /path/to/optuna-checkout COMMIT

Each file is Optuna's, with only the edits listed in EDITS (each a plain text replacement that must
match exactly once or more, so a changed upstream file fails loudly instead of silently drifting).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

HEADER = (
    "# Vendored from Optuna (https://github.com/optuna/optuna), {src} at commit {commit}\n"
    "# (the installed optuna 5.0.0's tree). Copyright (c) 2018 Preferred Networks, Inc. MIT licence:\n"
    "# tests/optuna_suites/LICENSE. Edited only to run against the sweeps product (tests/optuna_suites/vendor.py).\n"
)

STORAGE_IMPORTS = [
    ("from optuna.testing.storages import STORAGE_MODES\n", "from tests.optuna_suites.modes import STORAGE_MODES\n"),
    ("from optuna.testing.storages import StorageSupplier\n", "from tests.optuna_suites.modes import StorageSupplier\n"),
]

TPE_PARAM = """

# sweeps: every test below runs with Optuna's TPESampler (the control) and with the product's bounded
# TPE, at a history that bites and at the config's floor (tests/optuna_suites/modes.py).
@pytest.fixture(autouse=True, params=["optuna", f"bounded-{HISTORY}", f"bounded-{FLOOR}"])
def _tpe_sampler_class(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys.modules[__name__], "TPESampler", tpe_class(request.param, request.node.originalname))
"""

STORAGE_PARAM = """

# sweeps: every study these tests create lives on each of the modes (tests/optuna_suites/modes.py):
# Optuna's cached sqlite (the control) and the product's driver storage.
@pytest.fixture(autouse=True, params=["cached_sqlite", "driver_sqlite"])
def _storage_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import functools
    import sys

    import optuna
    from tests.optuna_suites.modes import IN_MEMORY_ONLY, OURS, StorageSupplier

    if request.param == OURS and request.node.originalname in IN_MEMORY_ONLY:
        pytest.skip(IN_MEMORY_ONLY[request.node.originalname])
    if request.node.originalname in IN_MEMORY_ONLY:
        yield  # Optuna's own in-memory study, as Optuna runs it
        return
    with StorageSupplier(request.param) as storage:
        monkeypatch.setattr(sys.modules[__name__], "create_study", functools.partial(optuna.create_study, storage=storage))
        yield
"""


def _samplers_edits() -> list[tuple[str, str]]:
    def fixture(cls: str, only: str = "") -> tuple[str, str]:
        head = f"class {cls}({cls[4:]}TestCase):\n    @pytest.fixture(\n        params=[\n"
        ids = "RELATIVE" if only else "TPE_SAMPLERS"
        new = (
            f"class {cls}({cls[4:]}TestCase):\n    @pytest.fixture(\n"
            f"        params=[functools.partial(TPE_SAMPLERS[name], n_startup_trials=0) for name in {ids}],\n"
            f"        ids=list({ids}),\n"
        )
        return (_between(head, "        ]\n"), new)

    return [
        (
            "from optuna.trial import Trial\n",
            "from optuna.trial import Trial\nfrom tests.optuna_suites.modes import OTHER_PROCESS, RELATIVE, TPE_SAMPLERS\n",
        ),
        ("import multiprocessing\n", "import functools\nimport multiprocessing\n"),
        # sweeps: the samplers are TPE only (Optuna's, the control, and the product's).
        (
            _between("sampler_class_with_seed: dict", "}\n"),
            "sampler_class_with_seed: dict[str, Callable[[int], BaseSampler]] = {\n"
            "    name: functools.partial(lambda seed, make: make(seed=seed), make=make) for name, make in TPE_SAMPLERS.items()\n"
            "}\n",
        ),
        (
            "    param_sampler_name_with_seed.append(pytest.param(sampler_name))\n",
            "    if sampler_name in OTHER_PROCESS:  # sweeps: the slow one, for two samplers (modes.OTHER_PROCESS)\n"
            "        param_sampler_name_with_seed.append(pytest.param(sampler_name))\n",
        ),
        fixture("TestBasicSampler"),
        fixture("TestRelativeSampler", only="relative"),
        fixture("TestMultiObjectiveSampler"),
        (_between("class TestSingleOnlySampler(SingleOnlySamplerTestCase):", "\n\n\n"), ""),
        (
            _between('@pytest.mark.parametrize(\n    "sampler_class_reseed_rng', "    ],\n)\n"),
            '@pytest.mark.parametrize(\n    "sampler_class_reseed_rng,expected_has_rng,expected_has_another_sampler",\n'
            "    [(functools.partial(make, n_startup_trials=0), True, True) for make in TPE_SAMPLERS.values()],\n"
            "    ids=list(TPE_SAMPLERS),\n)\n",
        ),
    ]


_SOURCE_CACHE: dict[str, str] = {}


class _between(str):
    """A marker for a replacement of the text from `start` to the first `end` after it (inclusive)."""

    def __new__(cls, start: str, end: str) -> _between:
        obj = super().__new__(cls, start)
        obj.end = end  # type: ignore[attr-defined]
        return obj


FILES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    # target: (Optuna's path, edits)
    "test_storages.py": ("tests/storages_tests/test_storages.py", STORAGE_IMPORTS),
    "test_study.py": ("tests/study_tests/test_study.py", STORAGE_IMPORTS),
    "test_optimize.py": ("tests/study_tests/test_optimize.py", STORAGE_IMPORTS),
    "test_trial.py": ("tests/trial_tests/test_trial.py", STORAGE_IMPORTS),
    "test_frozen.py": ("tests/trial_tests/test_frozen.py", STORAGE_IMPORTS),
    "test_search_space_group_decomposed.py": (
        "tests/search_space_tests/test_group_decomposed.py",
        [("from optuna.trial import Trial\n", "from optuna.trial import Trial\n" + STORAGE_PARAM)],
    ),
    "test_search_space_intersection.py": (
        "tests/search_space_tests/test_intersection.py",
        [("from optuna.trial import Trial\n", "from optuna.trial import Trial\n" + STORAGE_PARAM)],
    ),
    "test_cached_storage.py": ("tests/storages_tests/test_cached_storage.py", []),  # edits: _cached_edits()
    "test_samplers.py": ("tests/samplers_tests/test_samplers.py", []),  # edits: _samplers_edits()
    "test_tpe_sampler.py": (
        "tests/samplers_tests/tpe_tests/test_sampler.py",
        [
            (
                "from optuna.trial import Trial\n",
                "from optuna.trial import Trial\nfrom tests.optuna_suites.modes import FLOOR, HISTORY, tpe_class\n" + TPE_PARAM,
            )
        ],
    ),
}


def _apply(text: str, old: str, new: str | None, where: str) -> str:
    if isinstance(old, _between):
        start = text.index(old)
        stop = text.index(old.end, start + len(old)) + len(old.end)  # type: ignore[attr-defined]
        old = text[start:stop]
    if old not in text:
        raise SystemExit(f"{where}: the text to edit is not in Optuna's file any more: {old[:80]!r}")
    return text.replace(old, new) if new is not None else text


def _cached_edits(text: str) -> str:
    """sweeps: each test over the modes, the cache each mode puts over an RDB storage (Optuna's
    `_CachedStorage` as the control, the product's driver storage); the single-writer ones skipped for ours."""
    import re

    text = _apply(
        text,
        "from optuna.trial import TrialState\n",
        "from optuna.trial import TrialState\nfrom tests.optuna_suites.modes import STORAGE_MODES, cached_storage, rdb_url, skip_single_writer\n",
        "test_cached_storage.py",
    )
    text, n = re.subn(
        r"^def (test_\w+)\(\) -> None:\n",
        r'@pytest.mark.parametrize("mode", STORAGE_MODES)\ndef \1(mode: str) -> None:\n',
        text,
        flags=re.M,
    )
    assert n >= 6, n
    text, n = re.subn(r"(\w+) = _CachedStorage\((\w+)\)\n", r"\1 = cached_storage(mode, \2)\n", text)
    assert n >= 7, n
    # sweeps: a sweep's study is a file, never sqlite's :memory: (one database per connection, and the
    # driver writes from its own thread): our mode gets a file, the control keeps Optuna's :memory:.
    text, n = re.subn(r"create_rdb_storage\(\) as", "create_rdb_storage(rdb_url(mode)) as", text)
    assert n >= 5, n
    for test in ("test_uncached_set", "test_read_trials_from_remote_storage", "test_unfinished_trial_ids"):
        text, n = re.subn(
            rf"(def {test}\(mode: str\) -> None:\n(?:(?!^def ).*\n)*?)( +)((storage1?) = cached_storage\(mode, \w+\)\n)",
            lambda m, test=test: f'{m[1]}{m[2]}{m[3]}{m[2]}skip_single_writer({m[4]}, "{test}")\n',
            text,
            count=1,
            flags=re.M,
        )
        assert n == 1, test
    return text


def main(checkout: str, commit: str) -> None:
    for target, (src, edits) in FILES.items():
        text = subprocess.run(
            ["git", "-C", checkout, "show", f"{commit}:{src}"], check=True, capture_output=True, text=True
        ).stdout
        if target == "test_samplers.py":
            edits = _samplers_edits()
        if target == "test_cached_storage.py":
            text = _cached_edits(text)
        for old, new in edits:
            text = _apply(text, old, new, target)
        (HERE / target).write_text(HEADER.format(src=src, commit=commit) + text)
        print("vendored", target)


if __name__ == "__main__":
    main(*sys.argv[1:])
