"""The web page and JSON API (FastAPI): images answered at once, videos as background jobs kept in SQLite."""
