"""Sources: the one place where input becomes rows the kernels can read.

A public call builds one source from its input (``DenseInput(X).open(...)``): the dtype rule,
the column names, the sample weights, the copy reading the input makes (counted by the
memory check before it is made) and whether the rows are scanned for NaN and infinity yet.
The drivers then ask the source for what they need: block-wise passes, gathered rows, and the
kernel calls on its rows (``labels_inertia``, ``distances``, ``scheduled_step``), which is
where a source's kind of rows meets its kernel family.

Two kinds of rows today: dense rows in memory (``dense``) and CSR rows of a scipy sparse
matrix (``sparse``); ``read_input`` picks the kind for an input. Chunked or streamed sources
are further members of this layer (see docs/architecture.md).
"""

from .common import check_feature_names, check_n_features, check_sample_weight, is_sparse
from .dense import BLOCK_ROWS, DenseInput, DenseSource, open_dense, row_blocks
from .sparse import CsrInput, CsrSource


def read_input(X, *, input_name="X", dtype=None, names=True):
    """The input checked and described, not copied yet: a CsrInput for a scipy sparse
    matrix or array (any format), a DenseInput for anything else (``names``: with its
    column names)."""
    if is_sparse(X):
        return CsrInput(X, input_name=input_name, dtype=dtype)
    return DenseInput(X, input_name=input_name, dtype=dtype, names=names)


__all__ = [
    "BLOCK_ROWS",
    "CsrInput",
    "CsrSource",
    "DenseInput",
    "DenseSource",
    "check_feature_names",
    "check_n_features",
    "check_sample_weight",
    "is_sparse",
    "open_dense",
    "read_input",
    "row_blocks",
]
