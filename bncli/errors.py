"""The one error hierarchy: core code raises these, cli.py turns them into one line and an exit code."""

from __future__ import annotations


class BncliError(Exception):
    """A user-facing error: one line, no traceback."""

    exit_code = 1


class SpecError(BncliError):
    """The spec (or a command-line override of it) is invalid."""

    exit_code = 2


class DataError(BncliError):
    """A data source cannot be loaded or does not fit the model."""

    exit_code = 2


class DeviceError(BncliError):
    """The requested device does not exist on this machine."""

    exit_code = 2


class UsageError(BncliError):
    """A command-line option that cannot be honoured (e.g. an --out folder that can't be made)."""

    exit_code = 2


class RunError(BncliError):
    """A run failed after it started."""

    exit_code = 1


class SchemaError(BncliError):
    """A saved result document this bncli cannot read (another schema_version, or not one)."""

    exit_code = 2


class ExtraMissingError(BncliError):
    """An optional library (an extra such as bncli[tensorboard]) is not installed."""

    exit_code = 2
