"""Where Agent Factory keeps its data.

One data directory serves the server and the CLI alike: `$AGENTFACTORY_HOME` when set, otherwise
the user's data directory. Nothing here creates directories; callers create what they write.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "AGENTFACTORY_HOME"
ENV_CACHE = "AGENTFACTORY_CACHE"


def agentfactory_home() -> Path:
    """The data directory: `$AGENTFACTORY_HOME`, else the platform's user data dir."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("agentfactory", appauthor=False))


def cache_home() -> Path:
    """The cache directory: `$AGENTFACTORY_CACHE`, else the platform's user cache dir. Anything
    under it may be deleted at any time (the sandbox's compiled runner, resolved templates)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("agentfactory", appauthor=False))


def builtin_templates_dir() -> Path:
    """The `templates/` directory shipped with the package."""
    import templates

    return Path(templates.__file__).parent
