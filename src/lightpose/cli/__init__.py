"""Command-line interfaces: `lightpose` (subcommands) and `lightpose-demo`."""
