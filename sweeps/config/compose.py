"""Hydra composition of conf/ and the key checks: space overrides taken out of Hydra's hands, the keys the
user set, the keys conf/ knows (an unknown one refused with the nearest known), Hydra's errors made one line."""

from __future__ import annotations

import difflib
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweeps.autospace import AUTO
from sweeps.config.settings import (
    DatasetSettings,
    ResourceSettings,
    SamplerSettings,
    SchedulerSettings,
    SweepConfig,
    TrackingSettings,
    WarmStartSettings,
)
from sweeps.core.errors import ConfigError
from sweeps.space import BUDGETS, RULES, SpaceError, flatten, rule_for

CONF_DIR = Path(__file__).resolve().parent.parent.parent / "conf"


def split_space_overrides(overrides: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Separate `space.<key>=<grammar or value>` overrides from the ones Hydra composes."""
    parser = OverridesParser.create()
    hydra_overrides: list[str] = []
    space: dict[str, Any] = {}
    for text in overrides:
        key = text.split("=", 1)[0].lstrip("+~")
        if not key.startswith("space.") or "=" not in text:
            hydra_overrides.append(text)
            continue
        try:
            parsed = parser.parse_override(text.lstrip("+"))
        except HydraException as exc:
            raise ConfigError(
                key, f"cannot parse override {text!r}: {exc}", "write space.<param>='choice(a,b)' or space.<param>=<value>"
            ) from None
        space[key.removeprefix("space.")] = text.split("=", 1)[1] if parsed.is_sweep_override() else parsed.value()
    return hydra_overrides, space


def compose_config(overrides: list[str], config_dir: Path = CONF_DIR) -> dict[str, Any]:
    """Hydra composition of conf/ plus overrides -> a plain, fully resolved dict."""
    hydra_overrides, space_overrides = split_space_overrides(overrides)
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg: DictConfig = compose(config_name="config", overrides=hydra_overrides)
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except HydraException as exc:
        missing = re.search(r"Could not override '([\w.]+)'", str(exc))
        if missing:  # `n_trail=5` without '+': the same typo, the same answer
            refuse_unknown_keys(_with_key({}, missing[1]), config_dir)
        raise ConfigError("override", str(exc).strip().splitlines()[0] + _hydra_hint(str(exc)), _hydra_fix(str(exc))) from None
    except OmegaConfBaseException as exc:
        raise ConfigError(
            "config", str(exc).strip().splitlines()[0], "check the value's type and spelling in conf/ or the override"
        ) from None
    assert isinstance(resolved, dict)
    resolved["space"] = {**(resolved.get("space") or {}), **space_overrides}
    refuse_unknown_keys(resolved, config_dir)
    return resolved


def _with_key(raw: dict[str, Any], dotted: str) -> dict[str, Any]:
    section, _, leaf = dotted.partition(".")
    return {section: {leaf: None}} if leaf else {section: None}


def explicit_keys(overrides: list[str]) -> frozenset[str]:
    """The dotted keys the user set on the command line (`scheduler.grace_period=3`), as opposed to
    values that come from conf/: only those may make a dependent default an error."""
    return frozenset(text.split("=", 1)[0].lstrip("+~") for text in overrides if "=" in text)


def _yaml_keys(path: Path) -> set[str]:
    loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else {}
    return {str(k) for k in loaded} - {"defaults"} if isinstance(loaded, dict) else set()


def known_keys(config_dir: Path = CONF_DIR) -> dict[str, frozenset[str]]:
    """Every key the settings read, per section ("" is the top level): the fields of the typed
    settings plus every key that any option file of that group in conf/ defines."""
    known: dict[str, set[str]] = {
        "": {f.name for f in fields(SweepConfig)} - {"resolved", "space_note"} | _yaml_keys(config_dir / "config.yaml")
    }
    for section, settings in {
        "dataset": DatasetSettings,
        "sampler": SamplerSettings,
        "scheduler": SchedulerSettings,
        "resources": ResourceSettings,
        "tracking": TrackingSettings,
        "warm_start": WarmStartSettings,
    }.items():
        known[section] = {f.name for f in fields(settings)}
        for option in sorted((config_dir / section).glob("*.yaml")):
            known[section] |= _yaml_keys(option)
    known["sampler"] -= {"grid"}  # derived from the space, never set
    return {k: frozenset(v) for k, v in known.items()}


def _nearest(key: str, options: frozenset[str] | set[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, sorted(options), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else f"known keys: {', '.join(sorted(options))}"


def refuse_unknown_keys(raw: dict[str, Any], config_dir: Path = CONF_DIR) -> None:
    """A key no setting reads (`+n_trail=5`, `+dataset.vall_fraction=0.1`) is a typo that would
    otherwise cost a whole sweep run with the default: refuse it, naming the nearest known key."""
    known = known_keys(config_dir)
    for key in raw:
        if key not in known[""]:
            raise ConfigError(key, "unknown setting", f"{_nearest(key, known[''])} (python -m sweeps run --cfg shows every key)")
    for section, keys in known.items():
        value = raw.get(section)
        if not section or not isinstance(value, dict):
            continue
        for key in value:
            if key not in keys:
                full = f"{section}.{key}"
                raise ConfigError(
                    full,
                    "unknown setting",
                    f"{_nearest(key, keys).replace('mean ', f'mean {section}.')} (python -m sweeps run --cfg shows every key)",
                )
    for section in ("model", "space"):
        value = raw.get(section)
        for key in flatten(value) if isinstance(value, dict) else []:
            if section == "space" and key in (*BUDGETS, AUTO):
                continue
            try:
                rule_for(key)
            except SpaceError:
                options = (*RULES, *BUDGETS) if section == "space" else tuple(RULES)
                raise ConfigError(
                    f"{section}.{key}",
                    "unknown parameter",
                    f"{_nearest(key, options).replace('mean ', f'mean {section}.')} (or {section}.blockN.<Conv2D argument>)",
                ) from None


def _hydra_hint(message: str) -> str:
    match = re.search(r"Available options in '(\w+)':\s*((?:\n\s+\w+)+)", message)
    return f" (options: {', '.join(match[2].split())})" if match else ""


def _hydra_fix(message: str) -> str:
    if "To append to your config use" in message:
        return "check the key's spelling (python -m sweeps run --cfg shows every key), or add a new key with +key=value"
    if "Could not find" in message:
        return "pick one of the listed options, or add a YAML file to that group in conf/"
    return "write overrides as key=value (e.g. n_trials=20 sampler=random); quote values with parentheses"
