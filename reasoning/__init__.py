"""Reasoning core: trees, thought factors, search algorithms and the model protocols they rely on."""
