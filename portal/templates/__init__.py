"""Jinja2 templates of the portal's pages (a package, so that they ship with it)."""
