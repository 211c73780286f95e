"""Hot-path micro-benchmarks; each module prints its figures with an in-run baseline."""
