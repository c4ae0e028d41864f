"""CLI commands: segment_forest (registered onto electrode_ct.cli.app)."""
