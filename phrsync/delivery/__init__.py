"""The sending agent: outbox (state), auth, connect (the httpx clients), policy (retries, breaker), sender,
reconcile, status, and the sync/status/retry/run commands over them.

Entry points for other code: :func:`phrsync.delivery.agent.sync`, :func:`~phrsync.delivery.agent.retry`,
:func:`~phrsync.delivery.agent.run_agent`, :func:`phrsync.delivery.status.delivery_status`, and
:func:`phrsync.delivery.agent.sync_payloads` for a build file sent to a given URL (see docs/delivery.md)."""
