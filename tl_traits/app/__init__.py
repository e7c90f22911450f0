"""The application: the tl-traits CLI, the main job and its report."""
