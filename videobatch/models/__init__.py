"""The tables of SPEC section 3; importing this package registers them all on ``Base``."""

from videobatch.models.account import Account, ApiKey
from videobatch.models.batch import BatchJob, BatchStatus, TaskStatus, VideoTask
from videobatch.models.ledger import LedgerEntry, LedgerKind

__all__ = [
    "Account",
    "ApiKey",
    "BatchJob",
    "BatchStatus",
    "LedgerEntry",
    "LedgerKind",
    "TaskStatus",
    "VideoTask",
]
