"""Serving real engines (vLLM) for the search: the engine's own environment, server processes, model conversion."""
