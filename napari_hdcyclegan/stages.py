"""Names of the HDcycleGAN generator's stages (torch-free, so widgets can list them cheaply).

:meth:`napari_hdcyclegan.model.networks.Generator.stages` yields activations under these names;
feature maps are taken after a stage's activation (docs/model.md).
"""

from __future__ import annotations

__all__ = ["GENERATOR_STAGES", "generator_stages"]


def generator_stages(n_res: int = 6) -> tuple[str, ...]:
    """Stage names of a generator with ``n_res`` residual blocks, in forward order.

    Parameters
    ----------
    n_res : int
        Residual blocks at the bottleneck (6 in the paper).

    Returns
    -------
    tuple of str
        ``init, down1, down2, down3, res1 .. res<n_res>, up1, up2, up3, final``.
    """
    return ("init", "down1", "down2", "down3", *(f"res{i}" for i in range(1, n_res + 1)),
            "up1", "up2", "up3", "final")


#: Stages of the paper-size generator (6 residual blocks).
GENERATOR_STAGES: tuple[str, ...] = generator_stages(6)
