"""Alembic migrations of the portal's schema, shipped inside the package."""
