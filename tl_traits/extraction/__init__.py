"""Extraction: turn captured activations of a trait set into TraitVectors with the registered extractors."""
