"""The `openseg` command line: thin typer commands (parse, validate, call one function)."""
