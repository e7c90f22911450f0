"""Built-in attacks plugins; each registers through the `tl_traits.attacks` entry-point group."""
