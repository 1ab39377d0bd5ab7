"""Long-term multimodal memory for embodied dialogue: store, retrieval, context building.

Knows nothing of ROS or of the model server protocol (see docs/memory.md).
"""

from memory.consolidate import ExtractiveSummarizer, Summarizer
from memory.context import (
    IMAGE_TOKENS,
    STRATEGIES,
    ContextRequest,
    ContextStrategy,
    count_tokens,
    register_strategy,
)
from memory.facade import Memory
from memory.retrieval import ScoreWeights
from memory.types import Context, ContextItem, MemoryTurn, Pose, SearchResult

__all__ = [
    "IMAGE_TOKENS",
    "STRATEGIES",
    "Context",
    "ContextItem",
    "ContextRequest",
    "ContextStrategy",
    "ExtractiveSummarizer",
    "Memory",
    "MemoryTurn",
    "Pose",
    "ScoreWeights",
    "SearchResult",
    "Summarizer",
    "count_tokens",
    "register_strategy",
]
