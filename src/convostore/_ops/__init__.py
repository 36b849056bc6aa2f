"""Operations on many sessions, behind ``SessionStore``.

Records, paging, retention, transfer (export and import) and integrity scans; each takes
the store's context.
"""
