"""One module per command family; each registers its subcommands and returns exit codes."""
