"""The user-side marketplace: HTTP client, installer, lockfile, key trust, resolver, scaffold."""
