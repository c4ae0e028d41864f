"""CLI commands: pipeline (registered onto electrode_ct.cli.app)."""
