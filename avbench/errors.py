"""avbench's own error types.

Every error a user can cause (bad input, unknown name, tampered file) is an
`AvbenchError`. The CLI turns it into one clear line and exit code 2, so no
traceback hides the item that is wrong.
"""


class AvbenchError(Exception):
    """Base class of every documented avbench error."""

    exit_code = 2


class RegistryError(AvbenchError, KeyError):
    """An unknown or invalid registry name, or a plugin of the wrong type."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ManifestError(AvbenchError, ValueError):
    """A manifest line or field that does not follow the schema."""


class SuiteError(AvbenchError, ValueError):
    """A suite spec that is malformed or names something missing."""


class DataError(AvbenchError, ValueError):
    """Missing, corrupt or mismatching data for a named item."""


class WeightsError(AvbenchError, ValueError):
    """A weights file that is missing, unknown or fails its hash check."""


class CheckpointError(AvbenchError, ValueError):
    """A checkpoint that is unsafe to load or does not fit the model."""


class RecordError(AvbenchError, ValueError):
    """A result record that cannot be read or compared."""


class ModelOutputError(AvbenchError, ValueError):
    """A model returned something that breaks the task's contract."""
