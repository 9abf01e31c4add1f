"""What the orchestrator tells the outside world about its work: live streams, metrics, logs."""
