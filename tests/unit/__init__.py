"""Fast unit tests, one module per gateway module."""
