"""Operations on many sessions, behind ``SessionStore``.

Records, paging, retention, export, import and integrity scans; each takes
the store's context.
"""
