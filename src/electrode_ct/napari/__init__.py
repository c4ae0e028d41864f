"""The napari plugin of electrode-ct (the ``napari`` extra): a face, no science in it.

An npe2 manifest (``napari.yaml``, registered by the ``napari.manifest`` entry point)
declares readers for every format :mod:`electrode_ct.io` reads, writers for images and
labels, sample data (the embedded real samples and a small phantom) and the widgets.
Every widget calls library functions and runs long jobs in a worker thread.

Importing this package imports neither napari nor Qt; the submodules that build widgets do.
"""

from __future__ import annotations

from electrode_ct.errors import DependencyError

INSTALL_HINT = 'install the napari extra: pip install "electrode-ct[napari]"'


def require_napari() -> None:
    """Raise :class:`DependencyError` (one line) when napari or its Qt binding is missing."""
    try:
        import napari  # noqa: F401
        import qtpy  # noqa: F401
        from qtpy import QtCore  # noqa: F401  (raises when no Qt binding is installed)
    except ImportError as exc:
        raise DependencyError(f"ect view needs napari and a Qt binding ({exc}); "
                              f"{INSTALL_HINT}") from None


__all__ = ["INSTALL_HINT", "require_napari"]
