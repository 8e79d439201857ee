"""The standard-library modules an agent may import inside the sandbox.

Shared by the guest runner (which imports every one of them at build time, so they are the only
modules bundled in the component's snapshot, and refuses any other import) and the host (docs,
error messages). A dotted entry allows that submodule; a plain entry allows the module and its
submodules that were bundled. Changing this file changes the runner's hash, so the cached
component is rebuilt.
"""

ALLOWED_MODULES = (
    "__future__",
    "abc",
    "array",
    "ast",
    "base64",
    "binascii",
    "bisect",
    "calendar",
    "collections",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "fractions",
    "functools",
    "graphlib",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "io",
    "itertools",
    "json",
    "keyword",
    "math",
    "numbers",
    "operator",
    "pprint",
    "random",
    "re",
    "statistics",
    "string",
    "struct",
    "textwrap",
    "time",
    "types",
    "typing",
    "unicodedata",
    "warnings",
    "zlib",
)

# Submodules of allowed packages that agents commonly import by their dotted name; bundling needs
# them imported at build time like the top-level modules.
BUNDLED_SUBMODULES = (
    "collections.abc",
    "html.entities",
    "html.parser",
    "json.decoder",
    "json.encoder",
)
