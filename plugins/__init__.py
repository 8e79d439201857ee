"""Built-in agent plugins, registered through the `agentfactory` entry-point group exactly like
installed community agents (see pyproject.toml); nothing here is imported implicitly."""
