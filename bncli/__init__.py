"""bncli: paired trainings with and without Batch Normalization that test why BN works."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """bncli.run, bncli.load, bncli.judge, bncli.load_plugins, CommandResult, BatchResult: imported on
    first use, so that `import bncli` (and the CLI) stays light."""
    import importlib

    # looked up on first use, never at `import bncli`: the package itself depends on none of them
    where = {"run": "bncli.api", "load": "bncli.api", "Result": "bncli.api", "CommandResult": "bncli.results",
             "BatchResult": "bncli.saved", "judge": "bncli.verdicts", "load_plugins": "bncli.plugins"}
    if name in where:
        attr = "judge_claims" if name == "judge" else name
        return getattr(importlib.import_module(where[name]), attr)
    raise AttributeError(f"module 'bncli' has no attribute {name!r}")


__all__ = ["BatchResult", "CommandResult", "Result", "__version__", "judge", "load", "load_plugins", "run"]
