"""Tornado request handlers: one module per resource over a shared base."""
