"""exec-server."""
