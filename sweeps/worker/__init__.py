"""The trainable and what runs beside it in a Ray worker: snapshots, system metrics, the data feed."""
