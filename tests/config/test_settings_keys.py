"""Keys the settings do not know are refused (with the nearest known key); defaults that depend on
other settings adapt, and only a value the user set is an error."""

import pytest

from sweeps.config.validation import load_config
from sweeps.core.errors import ConfigError, InputError


@pytest.mark.parametrize(
    ("override", "key", "nearest"),
    [
        ("+n_trail=5", "n_trail", "did you mean n_trials?"),
        ("n_trail=5", "n_trail", "did you mean n_trials?"),  # Hydra's own refusal, the same answer
        ("+max_epoch=3", "max_epoch", "did you mean max_epochs?"),
        ("+dataset.vall_fraction=0.1", "dataset.vall_fraction", "did you mean dataset.val_fraction?"),
        ("+sampler.n_startup_trail=3", "sampler.n_startup_trail", "did you mean sampler.n_startup_trials?"),
        ("+scheduler.grace_perod=1", "scheduler.grace_perod", "did you mean scheduler.grace_period?"),
        ("+resources.cpus_per_trail=1", "resources.cpus_per_trail", "did you mean resources.cpus_per_trial?"),
        ("+tracking.experiement=x", "tracking.experiement", "did you mean tracking.experiment?"),
        ("+model.filtres=8", "model.filtres", "did you mean model.filters?"),
        ("space.kernal_size=choice(1,3)", "space.kernal_size", "did you mean space.kernel_size?"),
        ("+tracking.api_token=s3cr3t", "tracking.api_token", "known keys:"),
    ],
)
def test_unknown_keys_are_refused_with_the_nearest_known_key(override, key, nearest):
    with pytest.raises(ConfigError) as info:
        load_config([override])
    assert info.value.key == key
    assert nearest in info.value.fix


def test_every_key_of_every_option_in_conf_is_known():
    """Each group option composes without being refused (a new YAML key is known by being there)."""
    from sweeps.config.compose import CONF_DIR, known_keys

    for group in ("dataset", "sampler", "scheduler", "resources", "tracking", "space"):
        for option in sorted((CONF_DIR / group).glob("*.yaml")):
            extra = ["dataset.path=/x.npz"] if option.stem == "npz" else []
            try:
                load_config([f"{group}={option.stem}", *extra])
            except InputError as exc:  # a setting that cannot run, or (space=auto) data not there: no unknown key
                assert "unknown" not in exc.problem, (option, exc)
    assert {"n_trials", "max_epochs", "dataset", "space"} <= known_keys()[""]


def test_a_one_epoch_sweep_adapts_the_default_grace_period():
    cfg = load_config(["max_epochs=1"])
    assert cfg.scheduler.name == "asha" and cfg.scheduler.grace_period == 1
    assert cfg.resolved["scheduler"]["grace_period"] == 1  # the record says what ran


def test_a_grace_period_the_user_set_is_still_checked():
    with pytest.raises(ConfigError) as info:
        load_config(["max_epochs=1", "scheduler.grace_period=2"])
    assert info.value.key == "scheduler.grace_period" and "more than max_epochs=1" in info.value.problem
