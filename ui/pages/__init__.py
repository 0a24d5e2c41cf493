"""The explorer's pages; each module exposes `build_page(engine, shared)`."""
