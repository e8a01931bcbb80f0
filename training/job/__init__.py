"""A training run as a subprocess: inputs checked and written as TIFF, a config file, start/stop/resume.

Used by the napari "Train / fine-tune" widget, napari-free and Qt-free::

    spec = JobSpec(out="runs/mine", name="mine", init_from="spectralis-sim", steps=300)
    prepare_data(spec, hn_images, ln_images)      # lists of 2D/3D arrays (layers or folders)
    job = TrainingJob(spec); job.start()          # python -m training.fit --config OUT/job.json
    job.poll()                                    # "running" | "finished" | "stopped" | "failed"
    job.stop(); job.start(resume=True)            # exact continuation from OUT/last

Stop terminates the process: checkpoints are written atomically, so ``OUT/last`` (resume) and
``OUT/best`` (best validation score) stay intact; the log rows after the last checkpoint are
dropped before a resume, so the logs continue exactly where the weights do.

Modules: :mod:`.spec` (the settings and the fit config), :mod:`.data` (inputs checked and written),
:mod:`.process` (the ``training.fit`` process), :mod:`.cli` (``python -m training.job``, headless).
"""

from .cli import main
from .data import bscans, check_domain, check_domains, prepare_data, read_folder_images
from .process import (
    BUDGET_SPENT,
    EXIT_WITH_PARENT,
    RESUME_FLAGS,
    STDERR_NAME,
    TrainingJob,
    exit_with_parent,
    fit_command,
    resume_spec,
)
from .spec import (
    CONFIG_NAME,
    RUN_FILES,
    VALIDATIONS,
    JobError,
    JobSpec,
    base_architecture,
    defaults_for,
    fit_config,
    write_config,
)

__all__ = ["BUDGET_SPENT", "CONFIG_NAME", "EXIT_WITH_PARENT", "RESUME_FLAGS", "RUN_FILES", "STDERR_NAME",
           "VALIDATIONS", "JobError", "JobSpec", "TrainingJob", "base_architecture", "bscans", "check_domain",
           "check_domains", "defaults_for", "exit_with_parent", "fit_command", "fit_config", "main",
           "prepare_data", "read_folder_images", "resume_spec", "write_config"]
