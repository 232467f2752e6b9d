"""videobatch: idempotent, credit-charging batches of AI video generation."""
