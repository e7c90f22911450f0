"""Vectors that travel: llama.cpp / repeng GGUF control vectors and steering-vectors' SteeringVector, both ways."""
