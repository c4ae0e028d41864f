"""CLI commands: compare (registered onto electrode_ct.cli.app)."""
