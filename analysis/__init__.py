"""rafale: analysis."""
