"""The pytest plugin: the `sandbox` fixture and marker (see plugin.py)."""
