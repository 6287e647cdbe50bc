"""bncli: paired trainings with and without Batch Normalization that test why BN works."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """bncli.run, bncli.load, CommandResult, BatchResult: imported on first use, so that `import
    bncli` (and the CLI) stays light."""
    if name in ("run", "load"):
        from bncli import api

        return getattr(api, name)
    if name == "CommandResult":
        from bncli.results import CommandResult

        return CommandResult
    if name == "BatchResult":
        from bncli.saved import BatchResult

        return BatchResult
    raise AttributeError(f"module 'bncli' has no attribute {name!r}")


__all__ = ["BatchResult", "CommandResult", "__version__", "load", "run"]
