"""Sparse autoencoders: the SAE store and decomposition, the SAE corpus, SAE training and sae-lens model classes."""
