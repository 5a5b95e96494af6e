"""The door to Ray: the runtime's start and stop, the searcher (one tell to Optuna), the callbacks, the stoppers, run_sweep."""
