"""Runs of a problem set: execute one search configuration over many problems, record each result once, and compare
runs with paired statistics (the research loop's spine; ARCHITECTURE.md, "Runs"); and automatic labels of stored
trees, the labeling algorithms run with a generator and their results stored (`autolabel.py`)."""
