"""CLI commands: measure (registered onto electrode_ct.cli.app)."""
