"""rafale: actors."""
