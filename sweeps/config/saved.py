"""The config a sweep saved (config.yaml), loaded again for `resume`: the settings a resume may change,
secrets given again, options' settings added since taken from their YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sweeps.config.validation import ConfigError, SweepConfig, validate
from sweeps.core.redaction import is_redacted, restore

RESUMABLE = ("n_trials", "time_budget_s", "max_failures", "max_failure_rate", "verbose")


def _with_new_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A sampler or scheduler setting added since the sweep was saved (e.g. sampler.history) takes its
    default from the option's YAML; the settings the sweep saved are kept as they were."""
    from sweeps.config.validation import CONF_DIR

    for group in ("sampler", "scheduler"):
        saved = raw.get(group)
        yaml_path = CONF_DIR / group / f"{saved.get('name')}.yaml" if isinstance(saved, dict) else None
        if yaml_path is not None and yaml_path.is_file():
            raw[group] = {**(yaml.safe_load(yaml_path.read_text()) or {}), **saved}
    return raw


def load_saved_config(name: str, output_dir: Path, overrides: list[str]) -> SweepConfig:
    """The config a sweep started with, plus the few settings a resume may change."""
    from omegaconf import OmegaConf

    path = output_dir / "sweeps" / name / "config.yaml"
    if not path.is_file():
        known = sorted(p.parent.name for p in (output_dir / "sweeps").glob("*/config.yaml"))
        raise ConfigError(
            "name",
            f"no sweep named {name!r} in {output_dir}",
            f"resume one of: {', '.join(known)}" if known else "start it with python -m sweeps run name=...",
        )
    raw = _with_new_settings(OmegaConf.to_container(OmegaConf.load(path), resolve=True))
    for text in overrides:
        key, _, value = text.partition("=")
        section, _, leaf = key.partition(".")
        saved = raw.get(section, {}).get(leaf) if leaf and isinstance(raw.get(section), dict) else None
        if is_redacted(saved) and restore(saved, yaml.safe_load(value)) != saved:
            raw[section][leaf] = yaml.safe_load(value)  # a secret the saved config hides, given again
            continue
        if key not in RESUMABLE:
            raise ConfigError(
                key,
                "cannot change when resuming (the sweep keeps its space, data and model)",
                f"change only {', '.join(RESUMABLE)}, or start a new sweep with run name=<new>",
            )
        raw[key] = yaml.safe_load(value)
    raw["output_dir"] = str(output_dir)
    hidden = [f"{s}.{k}" for s, v in raw.items() if isinstance(v, dict) for k, x in v.items() if is_redacted(x)]
    if hidden:
        raise ConfigError(
            hidden[0],
            "the saved config hides its password (secrets are never written to disk)",
            f"give it again: python -m sweeps resume {name} '{hidden[0]}=<the full value>'",
        )
    return validate(raw)
