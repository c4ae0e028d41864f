"""CLI commands: metrics (registered onto electrode_ct.cli.app)."""
