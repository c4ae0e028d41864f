"""CLI commands: segment_cnn (registered onto electrode_ct.cli.app)."""
