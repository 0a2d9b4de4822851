"""rafale: cluster."""
