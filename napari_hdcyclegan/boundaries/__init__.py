"""ILM and RPE (Bruch's membrane) boundaries of OCT b-scans, in eyepy's convention.

With ``inner=True`` also the six inner boundaries that Tian et al. (2015) trace (:mod:`.layers`:
RNFL, IPL, INL, OPL, PR1, PR2 in eyepy's names) and per-layer thickness columns.

One float row per A-scan (0 = top, NaN where missing) per boundary. Two stages:

1. :mod:`.skeleton`: the paper's procedure (feature map x b-scan > mean, median filter,
   skeletonize; Sec. 3.4, Fig. A.10/A.11), giving raw lines (``refine=False`` shows this stage).
2. :mod:`.paths`: optimal paths (column-wise dynamic programming) on the b-scan's own vertical
   gradients, with the skeleton and neighbouring b-scans as weak priors.

:mod:`.checks` flags implausible A-scans (``doubtful``), :mod:`.table` writes thickness and CSV,
:mod:`.channel` chooses and records the model's boundary channel, :mod:`.detect` ties them together.
numpy, scipy and scikit-image only; torch is reached only through a denoiser passed in.
"""

from __future__ import annotations

from ..progress import Cancelled
from .channel import (
    EARLY_STAGES,
    boundary_channel,
    boundary_errors,
    calibrate_boundary_channel,
    choose_channel,
    iter_calibrate_boundary_channel,
    label_free_score,
    supervised_score,
    write_boundary_channel,
)
from .checks import doubtful_ascans, mean_difference, summary
from .detect import (
    detect_boundaries,
    detect_checked,
    detect_volume,
    iter_boundaries,
    iter_detect,
    iter_model_boundaries,
    model_boundaries,
    support_columns,
)
from .layers import (
    INNER_NAMES,
    LAYER_BOUNDARIES,
    LAYER_NAMES,
    TIAN_LABELS,
    LayerParams,
    inner_boundaries,
)
from .paths import PathParams, fold_mask, optimal_path, refine_paths
from .skeleton import (
    SMOOTH_SIGMA,
    axial_gradient,
    clean_line,
    fill_gaps,
    prepare_bscan,
    refine_to_edges,
    running_nanmedian,
    skeleton_boundaries,
    skeleton_lines,
    skeleton_mask,
)
from .table import (
    BOUNDARY_COLORS,
    BOUNDARY_NAMES,
    CSV_HEADER,
    boundary_table,
    csv_header,
    file_names,
    layer_columns,
    read_boundaries_csv,
    thickness_um,
    write_boundaries_csv,
)

__all__ = [
    "BOUNDARY_COLORS", "BOUNDARY_NAMES", "CSV_HEADER", "Cancelled", "EARLY_STAGES", "INNER_NAMES",
    "LAYER_BOUNDARIES", "LAYER_NAMES", "LayerParams", "PathParams", "SMOOTH_SIGMA", "TIAN_LABELS",
    "axial_gradient", "boundary_channel", "boundary_errors", "boundary_table", "calibrate_boundary_channel",
    "choose_channel", "clean_line", "csv_header", "detect_boundaries", "detect_checked", "detect_volume",
    "doubtful_ascans", "file_names", "fill_gaps", "fold_mask", "inner_boundaries", "iter_boundaries",
    "iter_calibrate_boundary_channel", "iter_detect", "iter_model_boundaries", "label_free_score",
    "layer_columns", "mean_difference", "model_boundaries", "optimal_path", "prepare_bscan",
    "read_boundaries_csv", "refine_paths", "refine_to_edges", "running_nanmedian", "skeleton_boundaries",
    "skeleton_lines", "skeleton_mask", "summary", "supervised_score", "support_columns", "thickness_um",
    "write_boundaries_csv", "write_boundary_channel",
]
