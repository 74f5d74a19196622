"""A batch's logic written once, whoever sends its statements.

What committing a batch takes (which statements, in which order, what each answer means, what is
retried) does not depend on who holds the connection: the writer thread a pooled one, or the
event loop an async one of its own (ADR 0024). So the logic is a generator that yields each step
to send and is sent what the step gave, and returns the batch's answers; `run` drives it with a
blocking send, `run_async` with an awaited one. A step the generator cannot go on from (an
unreachable database) it raises, out of the driver.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

Step = TypeVar("Step")
Gave = TypeVar("Gave")
Done = TypeVar("Done")


def run(steps: Generator[Step, Gave, Done], send: Callable[[Step], Gave]) -> Done:
    """Send each of `steps` with `send`, and return what they come to."""
    step = next(steps)
    while True:
        gave = send(step)
        try:
            step = steps.send(gave)
        except StopIteration as done:
            answers: Done = done.value
            return answers


async def run_async(
    steps: Generator[Step, Gave, Done], send: Callable[[Step], Awaitable[Gave]]
) -> Done:
    """`run`, each step sent by awaiting `send`."""
    step = next(steps)
    while True:
        gave = await send(step)
        try:
            step = steps.send(gave)
        except StopIteration as done:
            answers: Done = done.value
            return answers
