"""The core every room builds on: models, prompts and positions, hooks, capture, vectors, trait sets,
registries, stats, files, progress."""
