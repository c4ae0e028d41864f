"""CLI commands: filters (registered onto electrode_ct.cli.app)."""
