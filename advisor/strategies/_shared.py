"""Parameters several strategies share: the network trainer's, and the probes' ``C`` and ``max_iter``."""

from __future__ import annotations

from advisor.strategies._base import Param
from advisor.strategies._constraints import BlockCount, Boolean, Interval
from advisor.strategies._recipes import RECIPES, default_text

_CNN = RECIPES["cnn"]

#: Head-only warm-up epochs a network strategy runs for ``warmup=True`` without ``warmup_epochs``.
DEFAULT_WARMUP_EPOCHS = 2


def k_param(default, default_text: str = "", search=None) -> Param:
    """``k``, the number of top blocks that train (``default``: a value, REQUIRED or a function of n)."""
    return Param("k", BlockCount(), default, help="number of top blocks that train", unit="blocks",
                 example='2', default_text=default_text, flag=True,
                 search=search if search is not None else {"type": "int", "low": 1, "high": "50%"})


#: Every network strategy's parameters after ``k`` (the trainer's defaults; a search's default ranges).
#: ``lr_ratio``, ``layer_decay``, ``rate_warmup`` and ``clip_grad`` default to the backbone family's
#: recipe (``_recipes.py``): the declared default is the CNN's, a transformer's is filled in by the trainer
#: (``advisor.train._network.parse_network_params``) wherever the value is not given.
NETWORK_PARAMS: tuple[Param, ...] = (
    Param("head_lr", Interval(float, 0.0, None, "neither"), 1e-2, help="learning rate of the new head",
          unit="per step", example="1e-3", flag=True, search={"type": "float", "low": 1e-4, "high": 1e-1, "log": True}),
    Param("lr_ratio", Interval(float, 0.0, None, "neither"), _CNN.lr_ratio,
          help="backbone learning rate / head learning rate", example="0.1", flag=True,
          default_text=default_text("lr_ratio"), search={"type": "float", "low": 0.01, "high": 1.0, "log": True}),
    Param("layer_decay", Interval(float, 0.0, 1.0, "right"), _CNN.layer_decay,
          help="rate multiplier from one block to the one below", example="0.8", flag=True,
          default_text=default_text("layer_decay"),
          search={"type": "float", "low": 0.5, "high": 1.0}),
    Param("weight_decay", Interval(float, 0.0, None), 1e-4, help="decoupled weight decay (never on biases and norm parameters)", example="1e-4", flag=True,
          search={"type": "float", "low": 1e-6, "high": 1e-2, "log": True}),
    Param("epochs", Interval(int, 1), 10, help="training epochs (fine-tuning; the warm-up comes on top)", unit="epochs",
          example="8", flag=True, search=8),
    Param("batch_size", Interval(int, 2), 64, help="training batch size", unit="images", example="64", flag=True,
          search=64),
    Param("patience", Interval(int, 0), 3, help="early stopping patience", unit="epochs", example="3", flag=True,
          search=3),
    Param("warmup_epochs", Interval(int, 0), None, help="head-only epochs of the LP-FT warm-up",
          unit="epochs", example="2", flag=True, default_text="0; 2 with warmup"),
    Param("warmup", Boolean(), None, help=f"linear-probe warm-up of the head first, {DEFAULT_WARMUP_EPOCHS} epochs, LP-FT",
          example="true", flag=True, default_text="false",
          search={"type": "categorical", "choices": [True, False]}),
    Param("rate_warmup", Boolean(), _CNN.rate_warmup,
          help="linear warm-up of the blocks' learning rates over their first epoch of steps (a tenth of their steps if more)",
          example="true", flag=True, default_text=default_text("rate_warmup")),
    Param("clip_grad", Interval(float, 0.0), _CNN.clip_grad, help="gradient-norm clipping (0: none)",
          example="1.0", flag=True, default_text=default_text("clip_grad")),
    Param("augment", Boolean(), False, help="random crops and flips of the training images",
          example="false", flag=True, search=False),
)

#: Every network strategy's defaults besides ``k`` (``warmup_epochs``: 0, or 2 with ``warmup``).
NETWORK_DEFAULTS = {p.name: p.default for p in NETWORK_PARAMS if p.name != "warmup"}
NETWORK_DEFAULTS["warmup_epochs"] = 0


def C_param(default: float, search_low: float, search_high: float) -> Param:
    """A probe's inverse L2 regularisation strength."""
    return Param("C", Interval(float, 0.0, None, "neither"), default, help="inverse regularisation strength",
                 example="1e-3", flag=True, search={"type": "float", "low": search_low, "high": search_high, "log": True})


def max_iter_param(default: int) -> Param:
    return Param("max_iter", Interval(int, 1), default, help="solver iterations at most", example="1000",
                 search=default)
