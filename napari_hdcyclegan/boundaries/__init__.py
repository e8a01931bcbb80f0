"""ILM and RPE (Bruch's membrane) boundaries of OCT b-scans, in eyepy's convention.

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

from ..progress import Cancelled  # noqa: F401 - re-exported
from .channel import (  # noqa: F401
    EARLY_STAGES, boundary_channel, boundary_errors, calibrate_boundary_channel, choose_channel,
    label_free_score, supervised_score, write_boundary_channel,
)
from .checks import doubtful_ascans, mean_difference, summary  # noqa: F401
from .detect import (  # noqa: F401
    detect_boundaries, detect_checked, detect_volume, iter_detect, iter_model_boundaries,
    model_boundaries, support_columns,
)
from .paths import PathParams, fold_mask, optimal_path, refine_paths  # noqa: F401
from .skeleton import (  # noqa: F401
    SMOOTH_SIGMA, axial_gradient, clean_line, fill_gaps, prepare_bscan, refine_to_edges,
    running_nanmedian, skeleton_boundaries, skeleton_lines, skeleton_mask,
)
from .table import (  # noqa: F401
    BOUNDARY_COLORS, BOUNDARY_NAMES, CSV_HEADER, boundary_table, read_boundaries_csv, thickness_um,
    write_boundaries_csv,
)
