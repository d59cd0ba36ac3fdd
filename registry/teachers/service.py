"""Teachers: OpenAI-compatible endpoints ops lend to labelling jobs. Only the secret's name is
stored; workers read its value (registry/teachers/secrets.py)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from registry.audit.service import audit
from registry.auth.principal import Principal
from registry.errors import Conflict, NotFound, Unprocessable
from registry.models import Teacher
from registry.teachers.repository import TeacherRepository
from registry.teachers.schemas import TeacherCreate, TeacherPatch

ACTIVE = ("queued", "running")


def _details(teacher: Teacher) -> dict[str, Any]:
    return {
        "name": teacher.name,
        "base_url": teacher.base_url,
        "model": teacher.model,
        "secret_name": teacher.secret_name,
        "requests_per_minute": teacher.requests_per_minute,
        "timeout_seconds": teacher.timeout_seconds,
        "max_retries": teacher.max_retries,
        "max_requests": teacher.max_requests,
        "max_tokens": teacher.max_tokens,
        "enabled": teacher.enabled,
    }


class TeacherService:
    def create(self, session: Session, *, actor: Principal, data: TeacherCreate) -> Teacher:
        repo = TeacherRepository(session)
        if repo.get_by_name(data.name) is not None:
            raise Conflict(f"teacher '{data.name}' already exists; PATCH it to change it")
        teacher = Teacher(**data.model_dump(), created_by=actor.subject)
        repo.add(teacher)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="teacher.create",
            target_type="teacher",
            target_id=teacher.name,
            details=_details(teacher),
        )
        return teacher

    def get(self, session: Session, *, name: str, lock: bool = False) -> Teacher:
        teacher = TeacherRepository(session).get_by_name(name, lock=lock)
        if teacher is None:
            raise NotFound(f"teacher '{name}' not found")
        return teacher

    def list(self, session: Session) -> Sequence[Teacher]:
        return TeacherRepository(session).list()

    def update(
        self, session: Session, *, actor: Principal, name: str, data: TeacherPatch
    ) -> Teacher:
        teacher = self.get(session, name=name, lock=True)
        before = _details(teacher)
        changes = {k: getattr(data, k) for k in data.model_fields_set}
        for key, value in changes.items():
            if value is None and key != "secret_name":
                continue  # null means "unchanged" except for the key, where it removes it
            setattr(teacher, key, value)
        session.flush()
        after = _details(teacher)
        changed = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
        audit.record(
            session,
            actor=actor,
            action="teacher.update",
            target_type="teacher",
            target_id=teacher.name,
            details={"changed": changed},
        )
        return teacher

    def delete(self, session: Session, *, actor: Principal, name: str) -> None:
        repo = TeacherRepository(session)
        teacher = self.get(session, name=name, lock=True)
        jobs = repo.jobs_by_status(teacher.id)
        active = sum(jobs.get(s, 0) for s in ACTIVE)
        if active:
            raise Conflict(
                f"teacher '{name}' is in use by {active} queued or running labelling job(s); "
                "cancel them, or disable the teacher (PATCH enabled=false)"
            )
        if jobs:
            raise Conflict(
                f"teacher '{name}' labelled {sum(jobs.values())} job(s) whose history names it; "
                "disable it instead (PATCH enabled=false)"
            )
        policies = repo.policies_naming(teacher.id)
        if policies:
            raise Conflict(
                f"teacher '{name}' is named by {policies} drift polic(ies); change them first, "
                "or disable the teacher (PATCH enabled=false)"
            )
        details = _details(teacher)
        repo.delete(teacher)
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="teacher.delete",
            target_type="teacher",
            target_id=name,
            details=details,
        )

    def usable(self, session: Session, *, name: str) -> Teacher:
        """A teacher a job or policy may name (422 when unknown or disabled: it is a field)."""
        teacher = TeacherRepository(session).get_by_name(name)
        if teacher is None:
            names: builtins.list[str] = [t.name for t in self.list(session) if t.enabled]
            known = ", ".join(names) or "none yet: ops add them with POST /v1/teachers"
            raise Unprocessable(f"teacher '{name}' not found; enabled teachers: {known}")
        if not teacher.enabled:
            raise Unprocessable(f"teacher '{name}' is disabled; ops can enable it")
        return teacher


teachers = TeacherService()
