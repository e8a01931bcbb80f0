"""Models a user can pick: the shipped ones (read-only, in the package) and the user's own.

User models are model directories in ``platformdirs.user_data_dir("napari-hdcyclegan")/models``
(``$HDCYCLEGAN_USER_DIR/models`` when that variable is set); training runs started from the
widget go to ``.../runs``. Nothing is ever written into the installed package.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .layout import CONFIG_FILE, SHIPPED_DIR, shipped_models

APP_NAME = "napari-hdcyclegan"
#: Overrides the per-user data directory (tests, portable installs).
USER_DIR_ENV = "HDCYCLEGAN_USER_DIR"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelEntry:
    """One selectable model: its name, folder, origin (``shipped``/``user``) and card facts."""

    name: str
    path: Path
    origin: str
    trained: bool
    description: str


def user_data_dir() -> Path:
    """The per-user data directory of the plugin (not created here).

    Returns
    -------
    Path
        ``$HDCYCLEGAN_USER_DIR`` when set, else platformdirs' user data directory.
    """
    env = os.environ.get(USER_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def user_models_dir() -> Path:
    """Where exported user models live.

    Returns
    -------
    Path
    """
    return user_data_dir() / "models"


def user_runs_dir() -> Path:
    """Where training runs started from the widget live.

    Returns
    -------
    Path
    """
    return user_data_dir() / "runs"


def user_models() -> list[str]:
    """Names of the model directories in :func:`user_models_dir`.

    Returns
    -------
    list of str
        Sorted.
    """
    root = user_models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _NAME.match(p.name) and (p / CONFIG_FILE).is_file())


def find_user_model(name: str) -> Path | None:
    """The folder of user model ``name``, or None.

    Parameters
    ----------
    name : str

    Returns
    -------
    Path or None
    """
    if not _NAME.match(name):
        return None
    path = user_models_dir() / name
    return path if (path / CONFIG_FILE).is_file() else None


def check_model_name(name: str) -> str:
    """``name`` when it can name a new user model; else a ValueError that says why.

    Parameters
    ----------
    name : str

    Returns
    -------
    str
        ``name``.

    Raises
    ------
    ValueError
        For a name with other characters, over 64 long, or taken by a shipped model.
    """
    if not _NAME.match(name):
        raise ValueError(f"model name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    if name in shipped_models():
        raise ValueError(f"model name {name!r} is a shipped model; choose another name")
    return name


def _card_facts(path: Path) -> tuple[bool, str]:
    """(trained, description) from a model's config.json; (False, reason) when unreadable."""
    try:
        data = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        return bool(data.get("trained", False)), str(data.get("description", ""))
    except (OSError, ValueError) as exc:
        return False, f"unreadable config.json ({exc})"


def list_models() -> list[ModelEntry]:
    """Shipped models, then user models (a user model shadowed by a shipped name is skipped).

    Returns
    -------
    list of ModelEntry
    """
    shipped = shipped_models()
    entries = [ModelEntry(n, SHIPPED_DIR / n, "shipped", *_card_facts(SHIPPED_DIR / n)) for n in shipped]
    root = user_models_dir()
    entries += [ModelEntry(n, root / n, "user", *_card_facts(root / n))
                for n in user_models() if n not in shipped]
    return entries
