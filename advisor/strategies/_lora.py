"""``lora``: low-rank adapters (Hu et al. 2022, LoRA) through Hugging Face ``peft`` on the backbone's pointwise
convolutions and linear layers (a CNN) or its attention and MLP projections (a transformer), and a new head;
everything else stays as pretrained. After training the adapters are merged into the weights, so the saved
model is the backbone's own architecture (``pip install 'advisor[lora]'``)."""

from advisor.strategies._base import Param, Strategy
from advisor.strategies._constraints import Interval, Pattern
from advisor.strategies._shared import NETWORK_PARAMS

#: The layers ``target`` picks when not given, per backbone family (``advisor.train._lora.default_targets``).
DEFAULT_TARGETS = {
    "cnn": "every pointwise (1x1, ungrouped) Conv2d and every Linear",
    "transformer": "every Linear of the blocks: attention qkv and proj, MLP fc1 and fc2",
}

LORA = Strategy(
    name="lora",
    kind="network",
    params=(
        Param("rank", Interval(int, 1), 4, help="rank of each adapter (its two factors' inner size)", example="8",
              flag=True, search={"type": "categorical", "choices": [2, 4, 8]}),
        Param("alpha", Interval(float, 0.0, None, "neither"), None,
              help="adapter scale numerator: the update is (alpha / rank) B A", example="16", flag=True,
              default_text="rank (a scale of 1)"),
        Param("target", Pattern(), None,
              help="regular expression searched in the qualified names (BLOCK.PATH, e.g. blocks.3.attn.qkv) of the "
                   "Conv2d and Linear layers that get adapters", example="'conv_pwl|qkv'", flag=True,
              default_text="per family: pointwise convs and linear layers (CNN); qkv, proj, fc1, fc2 (transformer)"),
        *NETWORK_PARAMS,
    ),
    runner="advisor.train._lora:run_lora",
    tables="advisor.report.run_tables:lora_tables",
    backbone_check="advisor.train._lora:check_lora",
    summary="low-rank adapters (peft) on a CNN's pointwise convs and linear layers or a transformer's qkv, proj, "
            "fc1, fc2, and a new head; merged into the weights after training",
)
