"""Long jobs of the widgets: a worker thread, a progress bar, a cancel button, messages.

A job is a function ``job(progress)`` run in a napari thread worker; it wraps its loops
(blocks, slabs, slices) in ``progress(iterable, total)``, which reports each step to the
widget's progress bar and raises :class:`Cancelled` at the next step once the user pressed
Cancel, so nothing is half-written: results are handed to the GUI only when the job
returns. Errors of the library (and any other exception) become one message in the
viewer's notification area, never a traceback dialog.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from magicgui.widgets import Container, Label, ProgressBar, PushButton

T = TypeVar("T")
Progress = Callable[..., Iterator[Any]]


class Cancelled(Exception):
    """Raised inside a job at the step after the user pressed Cancel."""


def notify(message: str, *, error: bool = False) -> None:
    """One line in the viewer's notification area."""
    from napari.utils.notifications import show_error, show_info

    (show_error if error else show_info)(message)


def error_message(exc: BaseException) -> str:
    """The one-line message of an exception (library errors carry their own)."""
    from electrode_ct.errors import ElectrodeCTError

    if isinstance(exc, ElectrodeCTError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class JobPanel(Container):
    """Progress bar, status line and Cancel button running one job at a time."""

    def __init__(self) -> None:
        # always shown: hiding and showing it re-lays the window out (~0.3 s at 512²)
        self._bar = ProgressBar(value=0, min=0, max=1)
        self._status = Label(value="")
        self._cancel = PushButton(text="Cancel", enabled=False)
        super().__init__(widgets=[self._bar, self._status, self._cancel], labels=False)
        self._cancel.changed.connect(self.cancel)
        self.native.destroyed.connect(self._closed)
        self._alive = True
        self._cancelled = False
        self.worker: Any = None
        self.last_error: str | None = None

    @property
    def running(self) -> bool:
        """True while a job runs."""
        return self.worker is not None

    def start(self, job: Callable[[Progress], T], done: Callable[[T], None], *,
              title: str) -> Any:
        """Run ``job(progress)`` in a worker thread; ``done(result)`` on the GUI thread.

        Returns the worker, or None when another job of this panel still runs.
        """
        from napari.qt.threading import create_worker

        if self.running:
            notify(f"{title}: another job is running; wait or cancel it", error=True)
            return None
        self._cancelled = False
        self.last_error = None
        worker = create_worker(job, self._progress, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda result: self._alive and done(result))
        worker.errored.connect(self._failed)
        worker.finished.connect(self._idle)
        self.worker = worker
        worker.start()  # first: the panel's repaint below then overlaps the job
        self._status.value = f"{title}…"
        self._cancel.enabled = True
        self._bar.value = 0  # the maximum comes with the first step (see _show)
        return worker

    def cancel(self) -> None:
        """Ask the running job to stop at its next step."""
        self._cancelled = True
        if self.worker is not None:
            self.worker.quit()

    def _closed(self, *_: Any) -> None:
        """The widget (or its viewer) was closed: stop the job, show nothing more."""
        self._alive = False
        self.cancel()

    def tick(self, done: int, total: int) -> None:
        """Report ``done`` of ``total`` steps from the job; raises :class:`Cancelled` once
        the user pressed Cancel (for library calls that take a per-step callback)."""
        if self._cancelled:
            raise Cancelled
        self._set(done, total)

    def _progress(self, iterable: Iterable[Any], total: int | None = None) -> Iterator[Any]:
        items = list(iterable) if total is None else iterable
        n = len(items) if total is None else int(total)  # type: ignore[arg-type]
        for i, item in enumerate(items):
            self.tick(i, n)
            yield item
        if self._cancelled:
            raise Cancelled
        self._set(n, n)

    def _set(self, value: int, total: int) -> None:
        from superqt.utils import ensure_main_thread

        ensure_main_thread(self._show)(value, total)

    def _show(self, value: int, total: int) -> None:
        if not self._alive:
            return
        top = max(total, 1)
        if self._bar.max != top:  # a new maximum re-lays the window out (~0.3 s at 512²)
            self._bar.max = top
        self._bar.value = min(value, top)

    def fail(self, exc: BaseException | str) -> None:
        """Report a failure in the notification area (and keep it as ``last_error``)."""
        self.last_error = exc if isinstance(exc, str) else error_message(exc)
        notify(self.last_error, error=True)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, Cancelled):
            self.last_error = "cancelled"
            if self._alive:
                notify("cancelled; nothing was written")
            return
        self.fail(exc)

    def _idle(self) -> None:
        self.worker = None
        if not self._alive:
            return
        self._cancel.enabled = False
        self._status.value = self.last_error or "done"
