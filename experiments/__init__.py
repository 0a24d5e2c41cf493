"""Runs of a problem set: execute one search configuration over many problems, record each result once, and compare
runs with paired statistics (the research loop's spine; ARCHITECTURE.md, "Runs")."""
