"""feedhub: follow RSS/Atom sources, keep every entry, republish merged per-category feeds."""

import sys

__version__ = "0.1.0"

# httpx imports its command line, and with it Rich and Pygments (~0.1 s), whenever
# they are installed, as feedhub's own dependencies make them; feedhub never runs it.
# A module set to None fails to import, as it does without them.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
