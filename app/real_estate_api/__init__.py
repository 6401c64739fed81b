"""The real-estate API service: recommendations and valuations, with health, readiness and metrics."""
