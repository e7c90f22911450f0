"""Which TransformerLens hook each outside tool steers at: both add to a decoder block's output."""

from __future__ import annotations

from tl_traits.core.errors import TlTraitsError


class InteropError(TlTraitsError):
    """A vector that another tool cannot hold, or a file from another tool that cannot become a TraitVector."""


def block_output_index(layer: int, hook: str, tool: str) -> int:
    """The decoder block whose output holds `hook` at `layer`: resid_post k is block k's output,
    resid_pre k is block k-1's. llama.cpp and repeng (`direction.k`) and steering-vectors
    (`decoder_block` k) all add to block k's output."""
    if hook == "resid_post":
        return layer
    if hook == "resid_pre" and layer >= 1:
        return layer - 1
    raise InteropError(
        f"{tool} adds vectors to a decoder block's output (TransformerLens resid_post); this vector was read at "
        f"{hook} layer {layer}, which no block output holds. Extract at hook='resid_post' to export it."
    )
