"""Per-block output moments: each block's per-channel mean and variance over images and positions.

The source side of the reference-moment shift (``advisor reference`` stores them) and its target side
(analyze gathers them in its one pass) are the same accumulation, so both read the same numbers: every
block's OUTPUT, read through the backbone's declared :class:`~advisor.models.Layout` with the channels
first (``nchw`` maps as they are, ``nhwc`` windows permuted, ``nlc`` tokens transposed with the prefix
tokens left out), reduced over images and positions by :class:`~advisor.measure._bn_shift.MomentAccumulator`.

Like the BatchNorm input moments, each batch contributes its first ``max(min_images, batch // every)``
images: every position of a quarter of the sample pins per-channel moments down far below the
differences that matter, at a quarter of the cost.
"""

from __future__ import annotations

import numpy as np

from advisor.measure._bn_shift import MomentAccumulator


class BlockMoments:
    """Accumulates every block's output moments during a forward pass over blocks.

    The forward loop calls :meth:`update` with each block's output, in order, once per batch; then
    :meth:`result` gives ``[(mean [C], var [C]), ...]`` per block (NumPy float64, population variance).

    Args:
        layout: the backbone's :class:`~advisor.models.Layout` (how its block outputs lay out channels).
        n_blocks: number of blocks.
        every, min_images: each batch contributes its first ``max(min_images, batch // every)`` images.
    """

    def __init__(self, layout, n_blocks: int, *, every: int = 4, min_images: int = 8) -> None:
        self.layout = layout
        self.every = int(every)
        self.min_images = int(min_images)
        self._accs = [MomentAccumulator() for _ in range(n_blocks)]

    def update(self, i: int, x) -> None:
        """Add block ``i``'s output ``x`` (one batch, laid out as the backbone declares)."""
        self._accs[i].update(self.layout.by_channel(x[: max(self.min_images, x.shape[0] // self.every)]))

    def result(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per block ``(mean, var)``, each NumPy float64 ``[C]``."""
        return [acc.result() for acc in self._accs]
