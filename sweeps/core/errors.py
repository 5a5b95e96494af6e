"""The errors of `sweeps`: one root, one input error, and the exit codes, each defined here only.

As `optuna.exceptions.OptunaError` and `ray.tune.error.TuneError`: every error the product raises
on purpose derives from `SweepsError`, so the CLI catches the root once, prints one line and exits
with the error's `exit_code`. A library caller (a notebook, `sweeps.run`) catches the same classes.

Pure and light: imported by the config check before anything heavy is.
"""

from __future__ import annotations

from sweeps.core.redaction import redact_text

# Exit codes of `python -m sweeps`, as a shell sees them.
EXIT_OK = 0
EXIT_FAILED = 1  # the sweep ran but no trial completed, failures stopped it, its champion was not registered as asked, or a submitted job failed
EXIT_BAD_INPUT = 2  # nothing was run or written: one line names the field and the fix
EXIT_INTERRUPTED = 130  # as a shell reports a process ended by Ctrl+C


class SweepsError(Exception):
    """The root: an error the product raises on purpose, with a message a user can act on."""

    exit_code = EXIT_FAILED


class InputError(SweepsError, ValueError):
    """Bad input (a setting, a file, a name) found before anything was written.

    `field` is what to change (`n_trials`, `dataset.path`, `--input`), `problem` what is wrong with
    it, `fix` how to put it right. A URL in the text (a tracking URI, a study database) never shows
    its password.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field, self.problem, self.fix = field, redact_text(problem), redact_text(fix)
        super().__init__(f"{field}: {self.problem}. Fix: {self.fix}")

    @property
    def key(self) -> str:
        """The field, by its older name."""
        return self.field

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Pickled across Ray's processes with its three arguments, not the formatted message.
        return (type(self), (self.field, self.problem, self.fix))


class ConfigError(InputError):
    """A setting that cannot run (a Hydra override, a YAML value, an impossible space)."""


class DatasetError(InputError):
    """A dataset that cannot be loaded (a missing file, labels out of step, an unknown name)."""


class FolderError(DatasetError):
    """Bad input in an image folder (an empty class, a corrupt image, an unknown option)."""


class SubmitError(SweepsError):
    """Nothing was submitted to the cluster, for a reason the user can fix; the message is one line."""

    exit_code = EXIT_BAD_INPUT


class DoNotRetry(SweepsError):
    """A trial failure a retry cannot help (see sweeps.worker.trainable.deterministic): raised in the worker
    in place of its cause, which it carries with the epochs the trial finished, so the trial reports it as
    its last result (failed_error) instead of raising it to Tune, which would retry it."""

    def __init__(self, cause: BaseException, epochs_done: int = 0) -> None:
        import traceback

        super().__init__(str(cause))
        self.cause, self.epochs_done = cause, epochs_done
        self.text = "".join(traceback.format_exception(cause))  # the cause's own traceback, as format_exc gives it

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (type(self), (self.cause, self.epochs_done))


def message(exc: SweepsError) -> str:
    """The one line the CLI prints for `exc`."""
    return f"error: {exc}"
