"""The amazon_kclpy (v3 interface) record processor: stream records in, budgets caught up.

The rule this module exists to keep: no checkpoint, now or in a later batch, ever covers a
record whose budget was neither caught up nor handed to the retry queue. Checkpoints are
positional, so one budget that cannot be handled holds back every later checkpoint of the
shard: it stays in `pending`, is retried with every batch, and checkpointing resumes once it is
handled. If the process dies meanwhile, the shard is re-read from the last checkpoint, which is
harmless (a catch-up of a budget that is current does nothing).

amazon_kclpy's `KCLProcess` swallows exceptions raised by the processor and still reports the
action done, which would let the daemon move on. So unexpected errors are not raised: they
exit the process (SystemExit, which KCLProcess re-raises), and the daemon restarts the shard
from its last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, Protocol

from amazon_kclpy.kcl import CheckpointError
from amazon_kclpy.v3.processor import RecordProcessorBase

from worker import logs, metrics
from worker.errors import InvalidInput
from worker.stream.records import budget_of
from worker.stream.settle import CatchUpMany, RetryQueue, per_budget, settle

log = logs.get(__name__)

RETRYABLE_CHECKPOINT_ERRORS = frozenset(
    {"ThrottlingException", "KinesisClientLibDependencyException"}
)


class Checkpointer(Protocol):
    def checkpoint(
        self, sequence_number: str | None = None, sub_sequence_number: int | None = None
    ) -> None: ...


class BudgetRecordProcessor(RecordProcessorBase):  # type: ignore[misc]
    """Production builds it with `catch_up_all` (the batch-wide catch-up: `runtime`); a
    per-budget `catch_up` (tests, the simulation's faulty actors) is run on the per-budget
    pool instead. Either way the rule below sees one outcome per budget."""

    def __init__(
        self,
        catch_up: Callable[[str], Any] | None = None,
        queue: RetryQueue | None = None,
        *,
        catch_up_all: CatchUpMany | None = None,
        checkpoint_attempts: int = 5,
        checkpoint_backoff: float = 0.5,
        shard_end_attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
        concurrency: int = 1,
    ) -> None:
        if (catch_up is None) == (catch_up_all is None):
            raise TypeError("BudgetRecordProcessor: give either catch_up or catch_up_all")
        # Budgets caught up at once within a batch, for a per-budget `catch_up`
        # (`catch_up_all` brings its own, BUDGET_CONCURRENCY in production).
        self.concurrency = concurrency
        if catch_up_all is None:
            assert catch_up is not None
            one = catch_up
            catch_up_all = lambda budgets: per_budget(one, self.concurrency)(budgets)  # noqa: E731
        self.catch_up_all = catch_up_all
        self.queue = queue
        self.checkpoint_attempts = checkpoint_attempts
        self.checkpoint_backoff = checkpoint_backoff
        self.shard_end_attempts = shard_end_attempts
        self.sleep = sleep
        self.shard_id: str | None = None
        # Budgets seen in a delivered record that were neither caught up nor enqueued.
        self.pending: dict[str, str] = {}
        self.log = log

    # -- lifecycle --------------------------------------------------------------------------

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        self.log = log.bind(shard_id=self.shard_id)
        self.log.info(
            "record processor initialized", sequence_number=initialize_input.sequence_number
        )

    def process_records(self, process_records_input: Any) -> None:
        try:
            records = list(process_records_input.records)
            budgets = self._budgets(records)
            self._handle_all([*self.pending, *budgets])
            if not records:
                return
            last = records[-1]
            if self.pending:
                metrics.current().count("CheckpointsHeld")
                self.log.error(
                    "not checkpointing: budgets neither caught up nor queued",
                    pending=sorted(self.pending),
                    held_at=last.sequence_number,
                )
                return
            self._checkpoint(
                process_records_input.checkpointer, last.sequence_number, last.sub_sequence_number
            )
        except Exception:
            self._die("unexpected error while processing records")
        finally:
            metrics.current().flush()  # once per batch, never per event

    def lease_lost(self, lease_lost_input: Any) -> None:
        # Another worker owns the shard now and re-reads it from the last checkpoint.
        self.log.warning("lease lost", pending=sorted(self.pending))
        self.pending.clear()

    def shard_ended(self, shard_ended_input: Any) -> None:
        """The shard's children wait for this checkpoint, and the MultiLangDaemon shuts this
        child down right after `shardEnded` whatever happens, so returning without a
        checkpoint would stall the shard for good. Retry pending budgets for a while; if they
        still fail, exit: the daemon restarts and re-reads the shard from its last checkpoint."""
        try:
            for attempt in range(1, self.shard_end_attempts + 1):
                self._handle_all(list(self.pending))
                if not self.pending:
                    break
                self.log.warning(
                    "shard ended with budgets pending; retrying",
                    pending=sorted(self.pending),
                    attempt=attempt,
                )
                self.sleep(min(30.0, self.checkpoint_backoff * 2**attempt))
            else:
                self._die(
                    "shard ended with budgets neither caught up nor queued; exiting so "
                    "the shard is re-read from its last checkpoint"
                )
            self._checkpoint(shard_ended_input.checkpointer, None, None)
            self.log.info("shard ended, checkpointed at shard end")
        except Exception:
            self._die("unexpected error at shard end")

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        try:
            self._handle_all(list(self.pending))
            if self.pending:
                self.log.error(
                    "shutdown requested with budgets pending; not checkpointing",
                    pending=sorted(self.pending),
                )
                return
            self._checkpoint(shutdown_requested_input.checkpointer, None, None)
            self.log.info("shutdown requested, checkpointed for handoff")
        except Exception:
            self._die("unexpected error at shutdown request")
        finally:
            metrics.current().flush()

    # -- work -------------------------------------------------------------------------------

    def _budgets(self, records: Iterable[Any]) -> list[str]:
        """Distinct budgets named by the batch, in first-seen order; bad records are logged
        with their sequence number and skipped (they name nothing we could project)."""
        seen: dict[str, None] = {}
        for record in records:
            sequence = getattr(record, "sequence_number", None)
            try:
                budget = budget_of(record.data)
            except InvalidInput as exc:
                self.log.warning(
                    "skipping malformed stream record", sequence_number=sequence, problem=str(exc)
                )
                continue
            if budget is not None:
                seen.setdefault(budget, None)
        return list(seen)

    def _handle_all(self, budgets: Iterable[str]) -> None:
        """Settle the budgets by the shared rule (`settle.settle`: catch them up at once with
        `catch_up_all`, queue what fails); what is neither caught up nor queued stays in
        `pending`, which holds every later checkpoint."""
        outcome = settle(budgets, self.catch_up_all, self.queue, logger=self.log)
        for budget in outcome.handled:
            self.pending.pop(budget, None)
        self.pending.update(outcome.pending)

    def _checkpoint(
        self,
        checkpointer: Checkpointer,
        sequence_number: str | None,
        sub_sequence_number: int | None,
    ) -> bool:
        for attempt in range(1, self.checkpoint_attempts + 1):
            try:
                checkpointer.checkpoint(sequence_number, sub_sequence_number)
            except CheckpointError as exc:
                name = str(exc.value) if hasattr(exc, "value") else str(exc)
                if name in RETRYABLE_CHECKPOINT_ERRORS and attempt < self.checkpoint_attempts:
                    self.log.info("checkpoint throttled, retrying", error=name, attempt=attempt)
                    self.sleep(self.checkpoint_backoff * attempt)
                    continue
                # Shutdown/InvalidState: the lease is gone; a later owner re-reads from the
                # last checkpoint, which is safe. Giving up on a throttled checkpoint is safe too.
                self.log.warning(
                    "checkpoint not taken",
                    error=name,
                    attempt=attempt,
                    sequence_number=sequence_number,
                )
                return False
            self.log.debug("checkpointed", sequence_number=sequence_number)
            return True
        return False

    def _die(self, what: str) -> NoReturn:
        self.log.exception(what, pending=sorted(self.pending))
        raise SystemExit(1)
