"""Built-in quantizers plugins; each registers through the `tl_traits.quantizers` entry-point group."""
