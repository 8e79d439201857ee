"""The marketplace, in two packages that show where code runs.

`marketplace.server` is what `agentfactory serve` runs: the FastAPI app, its JSON API, web pages,
metrics, rate limits, vetting of uploads and the bootstrap of built-in packages.
`marketplace.client` is what runs on a user's machine: the HTTP client, installer, lockfile, key
trust, resolver, scaffold and the installed-agents plugin. The client never imports the server.
"""
