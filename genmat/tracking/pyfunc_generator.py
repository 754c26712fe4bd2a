"""MLflow "models from code" definition of a genmat generator.

:meth:`genmat.tracking.mlflow_tracker.MlflowTracker.log_model` passes the path of this
file as ``python_model``: MLflow stores the file itself, not a pickle of an object.
Loading the model runs this file, then ``load_context`` rebuilds the generator from
the checkpoint logged beside it (artifact key ``"checkpoint"``), which is read with
``weights_only`` loading in :meth:`genmat.generate.Generator.from_checkpoint`.

Serving needs ``genmat`` installed in the serving environment.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext


class GeneratorModel(PythonModel):
    """Pyfunc wrapper: one row of conditions in, generated candidates out (a DataFrame)."""

    def load_context(self, context: PythonModelContext) -> None:
        """Rebuild the generator from the logged ``checkpoint`` artifact."""
        from genmat.generate import Generator

        self.generator = Generator.from_checkpoint(context.artifacts["checkpoint"])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Sample candidates for each row of target conditions in ``model_input``.

        ``params`` (for instance sampler steps, guidance scale, seed) are passed as keyword
        arguments to :meth:`genmat.generate.Generator.sample_frame`; MLflow only forwards
        the ones declared in the model signature's params schema.
        """
        return self.generator.sample_frame(model_input, **(params or {}))


mlflow.models.set_model(GeneratorModel())
