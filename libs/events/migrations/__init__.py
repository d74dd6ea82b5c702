"""Reusable Alembic migrations of the event kernel's tables.

Each service keeps its own Alembic history (one per service database); its first
revision calls :func:`kernel_0001.upgrade` so every database gets the same kernel
tables, and later kernel changes arrive as further ``kernel_000N`` modules that a
service revision calls. Migrations are frozen: they never import the live table
definitions in :mod:`libs.events.schema`.
"""
