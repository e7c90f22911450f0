"""Built-in judges plugins; each registers through the `tl_traits.judges` entry-point group."""
