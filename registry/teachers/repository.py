from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.models import DriftPolicy, LabellingJob, Teacher


class TeacherRepository:
    """Platform-wide rows (ops register teachers; tenants name them in labelling jobs)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_name(self, name: str, *, lock: bool = False) -> Teacher | None:
        stmt = select(Teacher).where(Teacher.name == name)
        if lock:
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
        return self.session.execute(stmt).scalar_one_or_none()

    def get(self, teacher_id: uuid.UUID) -> Teacher | None:
        return self.session.get(Teacher, teacher_id)

    def list(self) -> Sequence[Teacher]:
        return self.session.execute(select(Teacher).order_by(Teacher.name)).scalars().all()

    def add(self, teacher: Teacher) -> None:
        self.session.add(teacher)

    def delete(self, teacher: Teacher) -> None:
        self.session.delete(teacher)

    def jobs_by_status(self, teacher_id: uuid.UUID) -> dict[str, int]:
        stmt = (
            select(LabellingJob.status, func.count())
            .where(LabellingJob.teacher_id == teacher_id)
            .group_by(LabellingJob.status)
        )
        return {str(status): int(n) for status, n in self.session.execute(stmt)}

    def policies_naming(self, teacher_id: uuid.UUID) -> int:
        stmt = select(func.count()).where(DriftPolicy.teacher_id == teacher_id)
        return int(self.session.execute(stmt).scalar_one())
