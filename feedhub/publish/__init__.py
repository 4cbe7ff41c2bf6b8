"""Publishing rendered documents: static files (and, later, other targets)."""
