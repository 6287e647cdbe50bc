"""One module per subcommand (Typer's one-file-per-command layout)."""
