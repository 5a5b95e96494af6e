"""The one redaction step, table-tested, and where it is applied before anything is written."""

import io

import pytest
import yaml

from sweeps.core.redaction import REDACTED, RedactingStream, is_redacted, redact, redact_text, restore


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://alice:s3cr3t@host:5000", "http://alice:***@host:5000"),
        ("https://alice:p%40ss@mlflow.example.com/path", "https://alice:***@mlflow.example.com/path"),
        ("postgresql+psycopg://sweeps:hunter2@db:5432/optuna", "postgresql+psycopg://sweeps:***@db:5432/optuna"),
        ("error: tracking.uri: http://a:b@h does not answer", "error: tracking.uri: http://a:***@h does not answer"),
        ("mysql://user@db/x", "mysql://user@db/x"),  # no password: unchanged
        ("http://host:5000/#/experiments/1", "http://host:5000/#/experiments/1"),
        ("sqlite:////tmp/a.db", "sqlite:////tmp/a.db"),
        ("s3://bucket/key?token=abc&x=1", "s3://bucket/key?token=***&x=1"),
        ("no url at all", "no url at all"),
    ],
)
def test_redact_text(text, shown):
    assert redact_text(text) == shown


def test_redact_walks_mappings_and_lists_and_hides_secret_keys():
    config = {
        "tracking": {"uri": "http://u:pw@h", "study_storage": None, "api_token": "t0k"},
        "list": ["postgresql://a:b@c/d"],
        "n_trials": 3,
        "secret_key": "",
    }
    assert redact(config) == {
        "tracking": {"uri": "http://u:***@h", "study_storage": None, "api_token": REDACTED},
        "list": ["postgresql://a:***@c/d"],
        "n_trials": 3,
        "secret_key": "",
    }


def test_restore_takes_the_given_value_only_when_it_hides_to_the_saved_one():
    saved = "http://u:***@h:5000"
    assert is_redacted(saved) and not is_redacted("http://u@h:5000")
    assert restore(saved, "http://u:pw@h:5000") == "http://u:pw@h:5000"
    assert restore(saved, "http://u:pw@other:5000") == saved
    assert restore("sqlite:////a.db", None) == "sqlite:////a.db"


def test_the_terminal_stream_redacts_every_line():
    target = io.StringIO()
    stream = RedactingStream(target)
    stream.write("MLflow UI: http://u:")
    stream.write("pw@h:5000\nnext ")
    stream.flush()
    assert target.getvalue() == "MLflow UI: http://u:***@h:5000\nnext "


def test_a_config_error_never_shows_a_password():
    from sweeps.config.validation import load_config
    from sweeps.core.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        load_config(["tracking.study_storage=foo://sweeps:hunter2@db/optuna"])
    assert "hunter2" not in str(info.value) and "sweeps:***@db" in str(info.value)


def test_resume_asks_for_a_password_the_saved_config_hides(tmp_path):
    from sweeps.config.saved import load_saved_config
    from sweeps.config.validation import load_config
    from sweeps.core.errors import ConfigError

    cfg = load_config(["name=s", "tracking.uri=http://u:pw@127.0.0.1:5000", f"output_dir={tmp_path}"])
    folder = tmp_path / "sweeps" / "s"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(redact(cfg.resolved)))
    assert "pw@" not in (folder / "config.yaml").read_text()
    with pytest.raises(ConfigError) as info:
        load_saved_config("s", tmp_path, [])
    assert info.value.key == "tracking.uri" and "pw@" not in str(info.value)
    again = load_saved_config("s", tmp_path, ["tracking.uri=http://u:pw@127.0.0.1:5000"])
    assert again.tracking.uri == "http://u:pw@127.0.0.1:5000"
    with pytest.raises(ConfigError):  # another server is not the hidden value: refused as a change
        load_saved_config("s", tmp_path, ["tracking.uri=http://u:pw@elsewhere:5000"])
