"""Scale: executors that run many runs (local, Ray, Slurm), the sweep grids over them, and one aggregate."""
