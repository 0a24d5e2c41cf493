"""The Gradio explorer: watch a reasoning tree grow, read any trace, rate, edit, prune, expand and export."""
from .app import build_app, launch, load_auth_file

__all__ = ["build_app", "launch", "load_auth_file"]
