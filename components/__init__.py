"""Pulumi components of the real-estate-ai platform, one module per concern."""
