"""One sweep's session on the driver: checks before anything is written, state and locks, recovery, warm start, checkpoint retention, progress, summary, test score."""
