# Type stubs for src/mbk/_schedule.pyx: the schedule of Sculley's steps.
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

class StepRecord(NamedTuple):
    step: int
    batch_inertia: float
    mean_batch_inertia: float
    ewa_inertia: float | None
    center_shift: float | None
    n_reassigned: int
    elapsed: float
    stop_reason: str | None

HISTORY_COLUMNS: dict[str, type]

def clock() -> float: ...

class History:
    n_steps: int
    def __init__(self, columns: dict[str, NDArray] | None = None) -> None: ...
    def __len__(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    def columns(self) -> dict[str, NDArray]: ...

STOPPED_BY_SHIFT: str
STOPPED_BY_INERTIA: str
STOPPED_AT_MAX_STEPS: str
STOPPED_BY_LISTENER: str

class Schedule:
    batch_size: int
    n_clusters: int
    n_steps: int
    reassignment_ratio: float
    tol: float
    max_no_improvement: int
    alpha: float
    verbose: int
    listeners: tuple[Callable[[StepRecord], object], ...]
    history: History
    latest_centers: object
    latest_weight_sums: NDArray[np.float64] | None
    early_stopping: bool
    wants_center_shift: bool
    n_since_last_reassign: int
    no_improvement: int
    steps_run: int
    first_step: int
    last_batch_inertia: float
    stop_reason: str | None
    ewa_inertia: float | None
    ewa_inertia_min: float | None
    def __init__(
        self,
        batch_size: int,
        n_clusters: int,
        reassignment_ratio: float,
        verbose: int,
        *,
        n_samples: int | None = None,
        n_steps: int = 0,
        tol: float = 0.0,
        max_no_improvement: int | None = None,
        n_since_last_reassign: int = 0,
        first_step: int = 0,
        listeners: Iterable[Callable[[StepRecord], object]] = (),
        history: History | None = None,
        center_shift: bool = False,
        started: float | None = None,
    ) -> None: ...
    def reassign_now(self, weight_sums: NDArray[np.float64]) -> bool: ...
    def record(self, batch_inertia: float, center_shift: float, n_reassigned: int) -> bool: ...
