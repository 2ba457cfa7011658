"""Digital ID (หมอพร้อม DID / eKYC) statistics and KPI 54 (issue 13).

PHR has no bulk or statistics endpoint: the only check is one person at a time (``idp/api/check_ekyc``), so
phrsync keeps its own lists of people to count (the denominators, :mod:`phrsync.did.population`), asks PHR about
each (:mod:`phrsync.did.check`), keeps every answer in the state store (:mod:`phrsync.did.store`) and computes
KPI 54 from the counts (:mod:`phrsync.did.kpi`, pure functions). The web's DID page calls
:func:`phrsync.did.report.build_report` and :func:`phrsync.did.report.followup`.
"""
