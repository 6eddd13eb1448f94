"""The store layer: `SystemStore` on SQLite, its schema, tenant views and per-system pools."""
