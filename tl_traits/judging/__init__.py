"""Judging: score responses 0-100 for a trait, coherence or relevance; fill in a trait set's responses."""
