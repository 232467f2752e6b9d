"""The domain rules. Functions here take a session and never commit; the caller owns the
transaction (the one exception, ``batches.submit_batch``, says why)."""
