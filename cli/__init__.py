"""The `agentfactory` command line, assembled in one package (entry point: `cli.main:main`)."""
