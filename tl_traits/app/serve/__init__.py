"""`tl-traits serve`: a local web dashboard over one model: chat with per-token trait projections, steering side by
side with the unsteered answer, and a prompt-set browser. Needs the [serve] extra (starlette, uvicorn)."""
