"""The database layer: engines, dialect knowledge, the schema, statements and execution.

Data flows down through it: a session hands :mod:`~convostore._db.history` plain data, which
takes statements from :mod:`~convostore._db.statements` and runs them through
:mod:`~convostore._db.runner` on an engine made ready by :mod:`~convostore._db.engine`.
"""
