"""PLACEHOLDER: being written."""
from travian_repo.sql.base import SqlRepository


class SqlMilitaryRepository(SqlRepository):
    pass
