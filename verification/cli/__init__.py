"""The `hedui` command: one module per command group, loaded on first use (main.py)."""
