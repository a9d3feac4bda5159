"""Renderers: each takes one result and writes or prints it. They compute nothing."""
