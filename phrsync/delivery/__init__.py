"""The sending agent: outbox (state), auth, sender, reconcile and the sync/status/retry/run commands.

Entry point for other code: :func:`phrsync.delivery.agent.sync_payloads` (see docs/delivery.md)."""
