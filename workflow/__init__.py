"""复核 engine: flow definitions compiled to dual-review state machines, persisted and audited.

This package never imports Flask: it is used by the web layer, the CLI, workers and tests
alike, each passing an explicit SQLAlchemy session.
"""
