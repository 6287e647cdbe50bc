"""Allow `python -m bncli`."""

from bncli.cli import app

app(prog_name="bncli")
