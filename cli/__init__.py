"""Command-line subcommands; app.py wires them."""
