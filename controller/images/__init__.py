"""Image references and registry platform lookups."""
