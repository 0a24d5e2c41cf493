"""Training reward models from the project's own exports (no trl at runtime: TRL removed its PRMTrainer)."""
