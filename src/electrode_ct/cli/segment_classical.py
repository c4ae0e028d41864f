"""CLI commands: segment_classical (registered onto electrode_ct.cli.app)."""
