"""CLI commands: cracks (registered onto electrode_ct.cli.app)."""
