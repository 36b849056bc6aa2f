"""The database layer: engines, dialect knowledge, the schema, statements and execution.

Data flows down through it: a session hands ``history`` plain data, which takes statements
from ``statements`` and runs them through ``runner`` on an engine made ready by ``engine``.
"""
