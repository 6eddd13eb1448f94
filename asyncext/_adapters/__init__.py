"""Adapters: the `Adapter` base class, the registry of system types and the built-in adapters."""
