"""Code that several test modules share, so that no test module imports another.

`helpers.browser`: the headless-Chromium helpers (screenshots, the tree plot's nodes, the status line, text boxes,
dropdowns, keystrokes); `helpers.data`: the sample data files under shared/data. The shared fixtures (`db_url`,
`store`, `app`, `browser`, `page`, the models) are tests/conftest.py's. tests/ is on pytest's path
(pyproject.toml's `pythonpath`), so a test module imports these as `from helpers.browser import click_node`.
"""
