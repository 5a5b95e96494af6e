"""cluster.yaml and cluster-local.yaml: accepted by Ray's own launcher code, closed to the world but
SSH, the dashboard on the head's loopback, and nodes that install this project at its pins.

Offline, `ray up` gets as far as filling in the provider's defaults and validating against
Ray's schema (`prepare_config` + `validate_config`, both run here); everything after that talks
to the cloud (AWS needs boto3 and credentials) or to the machines over SSH.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray.autoscaler
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parent.parent
AWS, LOCAL = ROOT / "cluster.yaml", ROOT / "cluster-local.yaml"
BOTH = pytest.mark.parametrize("path", [AWS, LOCAL], ids=lambda p: p.name)
SCHEMA = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
WORLD = {"0.0.0.0/0", "::/0"}
PIN = re.compile(r"""(?P<name>[A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(?P<version>[^\s"';]+)""")
# What Ray's AWS provider writes into the group it creates (ray/autoscaler/_private/aws/config.py,
# _create_default_inbound_rules), before the config's IpPermissions; checked against Ray's own
# function below wherever boto3 is installed.
RAY_DEFAULT_RULES = [
    {"FromPort": -1, "ToPort": -1, "IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-cluster"}]},
    {"FromPort": 22, "ToPort": 22, "IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
]


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def commands(config: dict[str, Any], *keys: str) -> list[str]:
    keys = keys or (
        "initialization_commands",
        "setup_commands",
        "head_setup_commands",
        "worker_setup_commands",
        "head_start_ray_commands",
        "worker_start_ray_commands",
    )
    return [" ".join(c.split()) for key in keys for c in config.get(key, [])]


def pinned_dependencies() -> dict[str, str]:
    return {m["name"].lower(): m["version"] for m in map(PIN.match, PYPROJECT["project"]["dependencies"]) if m}


def world_open(rules: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    """(protocol, from port, to port) of every rule that admits any address on the internet."""
    return [
        (r["IpProtocol"], r.get("FromPort", -1), r.get("ToPort", -1))
        for r in rules
        if {x.get("CidrIp") for x in r.get("IpRanges", [])} & WORLD
        or {x.get("CidrIpv6") for x in r.get("Ipv6Ranges", [])} & WORLD
    ]


# ------------------------------------------------------------------ Ray's own validation


@BOTH
def test_file_matches_rays_cluster_schema(path):
    jsonschema.validate(load(path), SCHEMA)  # strict: an unknown or misspelt key is an error


@BOTH
def test_ray_up_accepts_the_file_up_to_the_first_cloud_call(path):
    validate_config(prepare_config(load(path)))


def test_the_schema_check_catches_mistakes():
    config = load(AWS)
    typo = {**config, "setup_command": config["setup_commands"]}
    with pytest.raises(jsonschema.ValidationError, match="setup_command"):
        jsonschema.validate(typo, SCHEMA)
    bad = copy.deepcopy(config)
    bad["available_node_types"]["gpu_worker"]["resources"]["GPU"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


# ------------------------------------------------------------------ security


def test_nothing_but_ssh_is_open_to_the_world():
    config = load(AWS)
    extra = config["provider"]["security_group"]["IpPermissions"]
    assert world_open(RAY_DEFAULT_RULES + extra) == [("tcp", 22, 22)]
    # Ray writes those rules only into a group it creates itself: no node may bring its own.
    for name, node_type in config["available_node_types"].items():
        assert "SecurityGroupIds" not in node_type["node_config"], name
        assert "NetworkInterfaces" not in node_type["node_config"], name


def test_rays_default_rules_are_the_ones_assumed_here():
    pytest.importorskip("boto3", reason="Ray's AWS provider module needs boto3 (pip install boto3)")
    from ray.autoscaler._private.aws.config import _create_default_inbound_rules

    assert _create_default_inbound_rules({"sg-cluster"}) == RAY_DEFAULT_RULES


@BOTH
def test_the_dashboard_listens_on_the_heads_loopback_only(path):
    config = load(path)
    head_starts = [c for c in commands(config, "head_start_ray_commands") if "ray start" in c]
    assert len(head_starts) == 1
    tokens = shlex.split(head_starts[0].split("ray start", 1)[1])
    hosts = [t.split("=", 1)[1] for t in tokens if t.startswith("--dashboard-host=")]
    hosts += [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == "--dashboard-host"]
    assert hosts == ["127.0.0.1"]
    everything = " ".join(commands(config))
    assert "0.0.0.0" not in everything and "--ray-debugger-external" not in everything


# ------------------------------------------------------------------ what the nodes install


@BOTH
def test_the_nodes_install_this_project_at_its_pins(path):
    config = load(path)
    mounts = {str(Path(local)): remote for remote, local in config["file_mounts"].items()}
    packages = [p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]  # sweeps*, ...
    needed = [*packages, "conf", "pyproject.toml", "README.md"]
    for name in needed:
        assert name in mounts, f"{name} is not copied to the nodes"
        assert (ROOT / name).exists()
    project_dir = str(Path(mounts["pyproject.toml"]).parent)
    assert {str(Path(mounts[name]).parent) for name in needed} == {project_dir}
    setup = commands(config, "setup_commands")
    assert any(re.search(r"\bpython3\.11 -m venv\b", c) for c in setup)
    assert PYPROJECT["project"]["requires-python"] == ">=3.11,<3.12"
    assert any(f"pip install -q -e {project_dir}" in c for c in setup)
    pins = pinned_dependencies()
    used = {m["name"].lower(): m["version"] for c in commands(config) for m in PIN.finditer(c)}
    assert used["ray"] == pins["ray"]
    assert used["tensorflow"] == pins["tensorflow"]
    assert {name: version for name, version in used.items() if name in pins} == {n: pins[n] for n in used if n in pins}


def test_a_gpu_worker_type_scales_from_zero():
    config = load(AWS)
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"]["CPU"] == 0
    gpu_types = [
        node_type
        for name, node_type in config["available_node_types"].items()
        if name != config["head_node_type"] and node_type["resources"].get("GPU") == 1
    ]
    assert len(gpu_types) == 1
    gpu = gpu_types[0]
    assert gpu["min_workers"] == 0 and 1 <= gpu["max_workers"] <= config["max_workers"]
    assert gpu["node_config"]["InstanceType"].startswith("g5.")


def test_the_on_premise_example_names_its_machines():
    config = load(LOCAL)
    provider = config["provider"]
    assert provider["type"] == "local" and provider["head_ip"] and provider["worker_ips"]
    assert "available_node_types" not in config  # Ray's local provider refuses them
