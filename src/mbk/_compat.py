"""scikit-learn is optional: with it, mbk's estimator is a full scikit-learn citizen.

With scikit-learn installed, the estimator derives from its mixins and ``BaseEstimator`` (clone,
pipelines, grid search, ``set_output``, metadata routing, tags) and raises its
``NotFittedError``; with scikit-learn >= 1.9 also from its ``CallbackSupportMixin``, which
runs its callbacks. Without it, small stand-ins keep ``get_params``/``set_params`` and a readable
repr, so the estimator works the same on its own.
"""

import inspect

try:
    from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
    from sklearn.exceptions import NotFittedError

    ESTIMATOR_BASES = (ClusterMixin, TransformerMixin, BaseEstimator)
    try:  # scikit-learn >= 1.9: its callbacks (ProgressBar, ...) through its documented mixin
        from sklearn.callback import CallbackSupportMixin

        ESTIMATOR_BASES = (CallbackSupportMixin, *ESTIMATOR_BASES)
    except ImportError:  # pragma: no cover - the test extra has scikit-learn 1.9
        pass
except ImportError:  # pragma: no cover - scikit-learn is a test dependency

    class NotFittedError(ValueError, AttributeError):
        """Raised when an estimator is used before it was fitted."""

    class BaseEstimator:
        """Parameter handling for estimators when scikit-learn is not installed."""

        @classmethod
        def _get_param_names(cls):
            signature = inspect.signature(cls.__init__)
            return sorted(
                name
                for name, p in signature.parameters.items()
                if name != "self" and p.kind != p.VAR_KEYWORD
            )

        def get_params(self, deep=True):
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            valid = self._get_param_names()
            for name, value in params.items():
                if name not in valid:
                    raise ValueError(
                        f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                        f"Valid parameters are: {valid!r}."
                    )
                setattr(self, name, value)
            return self

        def __repr__(self):
            defaults = {
                name: p.default
                for name, p in inspect.signature(type(self).__init__).parameters.items()
            }
            changed = []
            for name, value in self.get_params().items():
                default = defaults.get(name)
                if value is default or (
                    isinstance(value, (int, float, str, type(None)))
                    and type(value) is type(default)
                    and value == default
                ):
                    continue
                changed.append(f"{name}={value!r}")
            return f"{type(self).__name__}({', '.join(changed)})"

    ESTIMATOR_BASES = (BaseEstimator,)
