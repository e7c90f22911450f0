"""Built-in extractors plugins; each registers through the `tl_traits.extractors` entry-point group."""
