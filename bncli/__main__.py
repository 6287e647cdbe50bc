"""Allow `python -m bncli`."""

from bncli.cli import app

if __name__ == "__main__":  # worker processes (spawn) import this module without running the CLI
    app(prog_name="bncli")
