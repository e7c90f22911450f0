"""Steering: add a vector through hooks while generating, evaluate it with judges, search the coefficient."""
