"""Built-in plugins, importable as `tl_traits.plugins.<kind>.<name>`."""
