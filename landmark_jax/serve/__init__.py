"""The HTTP recognition service."""
