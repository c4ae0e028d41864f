"""CLI commands: synth (registered onto electrode_ct.cli.app)."""
