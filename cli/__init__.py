"""The `distill` command line: thin typer shells over the library's stage functions."""
