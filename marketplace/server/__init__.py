"""The marketplace server: FastAPI app, JSON API, web pages, metrics, rate limits, vetting."""
