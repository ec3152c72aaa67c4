"""PLACEHOLDER: being written."""
from travian_repo.sql.base import SqlRepository


class SqlDiplomacyRepository(SqlRepository):
    pass
