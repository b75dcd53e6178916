"""Sources: the one place where input becomes rows the kernels can read.

A public call builds one source from its input (``DenseInput(X).open(...)``): the dtype rule,
the column names, the sample weights, the copy reading the input makes (counted by the
memory check before it is made) and whether the rows are scanned for NaN and infinity yet.
The drivers then ask the source for what they need: block-wise passes, gathered rows, and the
kernel calls on its rows (``labels_inertia``, ``distances``, ``scheduled_step``), which is
where a source's kind of rows meets its kernel family.

Today every source is dense rows in memory (``dense``). CSR rows and chunked or streamed
sources are further members of this layer (see docs/architecture.md).
"""

from .common import check_feature_names, check_n_features, check_sample_weight
from .dense import BLOCK_ROWS, DenseInput, DenseSource, open_dense, row_blocks

__all__ = [
    "BLOCK_ROWS",
    "DenseInput",
    "DenseSource",
    "check_feature_names",
    "check_n_features",
    "check_sample_weight",
    "open_dense",
    "row_blocks",
]
