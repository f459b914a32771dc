"""On-disk cache of frozen-backbone activations, shared by trainers and search workers.

Two kinds of entries, each covering *all* items of a dataset and filled lazily:

* ``pooled`` block ``i``: block ``i``'s output pooled by the backbone's layout (a CNN's spatial mean, a
  ViT's class token or patch mean), float32 ``[C]`` per item (what the probes fit on);
* ``boundary`` ``b`` (``1 <= b < n_blocks``): the unpooled output of block ``b - 1``, i.e. the input of
  block ``b``, float16 per item in the block's own shape -- ``[C, H, W]`` maps, ``[L, C]`` tokens,
  ``[H, W, C]`` windows -- (what a trainer that freezes blocks ``0..b-1`` feeds to the part it trains).
  Boundary 0 would be the preprocessed image itself; it is never cached (callers compute it) and
  asking for it raises :class:`AdvisorError`.

An entry is keyed by the sha256 of: ``backbone_spec_id(backbone)``, a digest of the weights (parameters
and buffers) of the blocks the entry depends on, the entry kind and block name, the preprocessing key,
``dataset.images_fingerprint()`` (the images only: label variants of the same images share entries),
the device it is computed on (type, and the GPU's name on CUDA), the precision (parameter dtype, and
on CUDA that TF32 was off), the torch/torchvision/timm versions and :data:`FORMAT_VERSION`; a pooled
entry of a backbone whose layout is not the CNN default (``nchw``, ``avg``) also has the layout and
its pooling, so a ViT's entries pooled by class token and by patch mean differ (CNN keys are as
before). Every value is computed by the feature engine (:func:`advisor.models.engine.passes`) under
its float32 rule. The weights digest makes
random-weight backbones and backbones whose *later* blocks were fine-tuned safe: an entry is only ever
served for exactly the weights that produced it; the device, precision and versions make sure an entry
filled on a GPU or by another torch never feeds a CPU run that promises reproducibility.

On disk, under ``root/<key[:2]>/<key>/``::

    data.npy   NumPy memmap [len(dataset), ...]   (created sparse; rows written as computed)
    done.npy   bool [len(dataset)]                (True = row computed)
    meta.json  the key parts, for humans and ``advisor cache info``
    used       empty; its mtime is when the entry was last filled or read (for LRU eviction)
    lock       flock: exclusive to create, fill or remove the entry, shared to read it

Rows are written (and flushed) before their ``done`` flag, and a row is never rewritten once done, so
readers see either "not done" or the final value. Locks are taken on a fresh file descriptor each time,
so they hold between threads of one process as well as between processes.

Size limits. ``max_bytes`` limits one entry: an entry that would take more (see :meth:`boundary_bytes`)
does not *fit*. ``max_total`` (default :func:`default_cache_cap`, ``$ADVISOR_CACHE_MAX``) caps the
whole folder: when a new entry is created, the least recently used entries are removed until the
folder's entries and the new one fit under it (0 stores nothing). Entries another thread or process holds (filling or
reading) are skipped, so the folder can exceed the cap while more than it is in use at once. An entry
bigger than either limit is never stored: :meth:`ensure` skips it and :meth:`pooled` / :meth:`boundary`
compute it on every call (counted in ``stats["bypassed"]``). Trainers that call :meth:`boundary` once
per batch should check :meth:`fits` first and run the frozen blocks themselves when it is False.

One concept to a file: ``_size`` (sizes for people), ``_config`` (``$ADVISOR_CACHE``,
``$ADVISOR_CACHE_MAX``), ``_lock`` (file locks), ``_identity`` (device, precision, versions),
``_indices`` (blocks, boundaries, items), ``_digest`` (the weights digest), ``_entry`` (an entry on
disk), ``_compute`` (the frozen pass through the engine, and :func:`extract`), ``_store``
(:class:`ActivationCache`, the LRU store).
"""

from advisor.context.cache._compute import extract
from advisor.context.cache._config import DEFAULT_CACHE_MAX, default_cache_cap, default_cache_dir
from advisor.context.cache._entry import FORMAT_VERSION
from advisor.context.cache._identity import _VERSIONS
from advisor.context.cache._indices import _boundary_index
from advisor.context.cache._lock import _Lock
from advisor.context.cache._size import format_size, parse_size
from advisor.context.cache._store import ActivationCache

__all__ = ["ActivationCache", "DEFAULT_CACHE_MAX", "FORMAT_VERSION", "default_cache_cap", "default_cache_dir",
           "extract", "format_size", "parse_size"]
