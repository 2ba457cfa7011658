"""Local MOPH-PHR-compatible test server ("sandbox"): the PHR API, an Account Center imitation, fault
injection and a Thai PHR-centre dashboard, so provinces can rehearse uploads without touching production.

Entry points: ``phrsync sandbox serve|add-user|issue-token|stats`` (:mod:`.cli`, thin over :func:`.server.serve`
and :mod:`.admin`) and ``phrsync.sandbox.server.run_in_thread(SandboxConfig(...))`` for tests and demos.
See docs/sandbox.md.
"""
