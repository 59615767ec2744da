"""pytest entry point (pytest11). Filled in by the pytest plugin issue."""
