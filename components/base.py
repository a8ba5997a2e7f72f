"""What our NLU components share: Rasa's `create` for a component that has no state."""

from __future__ import annotations

from typing import Any, Self

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage


class StatelessComponent(GraphComponent):
    """A component with no configuration and nothing trained: Rasa creates it with `cls()`."""

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> Self:
        cls.warm_up()
        return cls()

    @classmethod
    def warm_up(cls) -> None:
        """Loads now what the first customer's message would otherwise wait for."""
