"""Side-by-side measurements of this product against its peers (not tests).

`python -m benchmarks compare` runs, one after the other and on the same data, search space and
budget: this product (`python -m sweeps run`), KerasTuner RandomSearch and Hyperband, plain Ray Tune
with OptunaSearch, and Optuna alone; it prints a table and writes CSV and PNG files.
`python -m benchmarks scaling` runs the same sweep of this product with 1 and 2 parallel slots.

Every tool runs in a fresh Python process started by the harness, so each pays its own imports and
start-up, and all timestamps share one clock (`time.time()`), zeroed at that process's launch.
"""
