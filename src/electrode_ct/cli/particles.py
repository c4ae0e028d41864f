"""CLI commands: particles (registered onto electrode_ct.cli.app)."""
