"""Server-rendered HTML pages of the marketplace (browse, search, package, publisher, forms)."""

from marketplace.server.web.routes import make_web_router, mount_web

__all__ = ["make_web_router", "mount_web"]
