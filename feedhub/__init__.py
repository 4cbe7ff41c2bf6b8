"""feedhub: follow RSS/Atom sources, keep every entry, republish merged per-category feeds."""

__version__ = "0.1.0"
