"""Definitions are data, validated in layers.

safe YAML with line marks (loader) → shape (schema) → meaning (validate) → frozen dataclasses
(spec, built by build) → a `transitions` machine compiled once per flow version (compile).
"""
