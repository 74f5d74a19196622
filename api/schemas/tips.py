"""Wire schemas of the tips product: a recommendation, its feedback and signals."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.base import EventId, Strict
from integrations.signals import Signal


class RecommendRequest(Strict):
    defer_activation: bool = Field(
        default=False,
        description="True when the tip may not be shown yet (prefetch); activate it when shown",
    )


class TipPublic(BaseModel):
    id: str
    kind: Literal["advice", "todo"]
    title: str
    body: str
    category: str
    effort_minutes: int


class RecommendResponse(BaseModel):
    event_id: str
    tip: TipPublic
    probability: float = Field(description="The probability with which this tip was drawn")
    policy: str
    model_version: int
    missing_sources: list[str] = Field(
        default_factory=list,
        description="Connected integrations left out of this decision (slow, failing, "
        "rate-limited or needing reconnection); the tip was chosen without them",
    )


class FeedbackRequest(Strict):
    event_id: EventId
    reaction: Literal["done", "useful", "later", "dismiss"]


class FeedbackResponse(BaseModel):
    event_id: str
    reaction: str | None
    reward: float
    duplicate: bool = Field(description="True when this event id already had a reaction")
    late: bool = Field(description="True when it came after the reward window: kept, not learned")


# The signal contract is one model, shared with the integrations that emit signals.
SignalIn = Signal
