"""Benchmarks: the engine speed report (`perf`, wired as `python app.py bench --perf`) and the GPU benchmark."""
