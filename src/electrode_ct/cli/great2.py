"""CLI commands: great2 (registered onto electrode_ct.cli.app)."""
