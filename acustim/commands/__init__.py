"""One module per group of ``acustim`` subcommands; each exposes ``register(subparsers)``."""
