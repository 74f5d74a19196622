"""Log streams: a range of the decision log read in one cursor, for exports (DSJSON, Parquet)
and counterfactual evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bandit.store.database import Database
from bandit.store.records import LearnedRow, LoggedDecision, SettledRow
from bandit.store.rows import _LOGGED, _logged, _moment, _pmf, _range_filters, decisions


class Streams(Database):
    """Decisions of a time range, oldest first, streamed in batches."""

    def iter_logged(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        surface: str | None = None,
        batch: int = 1000,
    ) -> Iterator[LoggedDecision]:
        """Decisions created in [start, end), oldest first, fetched `batch` rows at a time.

        One streamed query (see `_stream`), so memory is one batch whatever the size of the log.
        """
        query = _LOGGED.where(*_range_filters(start, end, surface)).order_by(
            decisions.c.created_at, decisions.c.event_id
        )
        for rows in self._stream(query, batch):
            yield from (_logged(r) for r in rows)

    def iter_settled(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        surface: str | None = None,
        batch: int = 1000,
    ) -> Iterator[list[SettledRow]]:
        """Decisions of [start, end) whose label is settled, oldest first, in lists of `batch`.

        Settled: learned (`learn_seq` and `learned_reward` set), or deferred and never
        activated. Rows are `SettledRow`s: `context`, `actions` and `pmf` as their stored JSON text,
        for exports that re-encode them without parsing repeated candidate lists each time.
        One streamed query, as `iter_logged`.
        """
        query = (
            sa.select(
                decisions.c.event_id,
                sa.type_coerce(decisions.c.created_at, sa.Text),
                sa.cast(decisions.c.context, sa.Text),
                sa.cast(decisions.c.actions, sa.Text),
                sa.cast(decisions.c.pmf, sa.Text),
                decisions.c.chosen_index,
                decisions.c.learn_seq,
                decisions.c.learned_reward,
            )
            .where(
                sa.or_(
                    sa.and_(
                        decisions.c.learn_seq.is_not(None), decisions.c.learned_reward.is_not(None)
                    ),
                    decisions.c.activated_at.is_(None),
                ),
                *_range_filters(start, end, surface),
            )
            .order_by(decisions.c.created_at, decisions.c.event_id)
        )
        for raw in self._stream(query, batch):
            yield [(event_id, _moment(created), *rest) for event_id, created, *rest in raw]

    def _stream(self, query: sa.Select[Any], batch: int) -> Iterator[Sequence[Any]]:
        """The rows of `query`, `batch` at a time, from one statement.

        PostgreSQL reads through a server-side cursor and SQLite steps its cursor, so one batch
        is in memory at a time. One statement means one sort: paging with LIMIT re-sorted the
        whole range for every page (quadratic without an index on the order), and the result
        is one consistent snapshot. The price: a pooled connection (on PostgreSQL, an open read
        transaction) is held until the caller has read the rest or closed the iterator.
        """
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
            yield from result.partitions()

    # evaluation -------------------------------------------------------------------------

    def _learned_filters(
        self,
        start: datetime | None,
        end: datetime | None,
        surface: str | None,
        model_key: str | None,
        through_seq: int | None = None,
    ) -> list[Any]:
        filters = [decisions.c.learn_seq.is_not(None), *_range_filters(start, end, surface)]
        if through_seq is not None:
            filters.append(decisions.c.learn_seq <= through_seq)
        if model_key is not None:
            filters.append(decisions.c.model_key == model_key)
        return filters

    def learned_summary(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        surface: str | None = None,
        model_key: str | None = None,
    ) -> tuple[int, float | None, float | None, float | None, int | None]:
        """(count, min reward, max reward, min propensity, max learn_seq) of the learned
        decisions of [start, end); pass the last to `iter_learned` to read exactly these."""
        query = sa.select(
            sa.func.count(),
            sa.func.min(decisions.c.learned_reward),
            sa.func.max(decisions.c.learned_reward),
            sa.func.min(decisions.c.propensity),
            sa.func.max(decisions.c.learn_seq),
        ).where(*self._learned_filters(start, end, surface, model_key))
        with self.autocommit.connect() as conn:
            row = conn.execute(query).one()
        return int(row[0]), row[1], row[2], row[3], row[4]

    def iter_learned(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        surface: str | None = None,
        model_key: str | None = None,
        through_seq: int | None = None,
        batch: int = 1000,
    ) -> Iterator[list[LearnedRow]]:
        """Learned decisions of [start, end), oldest first, in lists of `batch` rows.

        Each row is `(event_id, created_at, pmf, chosen_index, learned_reward, vw_example)`
        (no feature JSON): what counterfactual evaluation replays. One streamed query, as
        `iter_logged`.

        Replay reads every learned decision, so the rows skip SQLAlchemy's per-value result
        processing: the driver's values are converted here in one pass, and each distinct pmf
        text is parsed once.
        """
        filters = self._learned_filters(start, end, surface, model_key, through_seq)
        columns = (
            decisions.c.event_id,
            sa.type_coerce(decisions.c.created_at, sa.Text),
            sa.cast(decisions.c.pmf, sa.Text),
            decisions.c.chosen_index,
            decisions.c.learned_reward,
            decisions.c.vw_example,
        )
        # A logging policy writes few distinct pmfs: parse each once.
        pmfs: dict[str, tuple[float, ...]] = {}
        query = (
            sa.select(*columns)
            .where(*filters)
            .order_by(decisions.c.created_at, decisions.c.event_id)
        )
        for raw in self._stream(query, batch):
            if len(pmfs) > 1024:
                pmfs.clear()
            yield [
                (event_id, _moment(created), pmfs.get(pmf) or _pmf(pmfs, pmf), chosen, reward, ex)
                for event_id, created, pmf, chosen, reward, ex in raw
            ]
