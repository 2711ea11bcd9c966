"""Renderers: each takes values (a table, a Report) and returns text or bytes; none prints."""
