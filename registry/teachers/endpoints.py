from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from registry.auth import scopes as sc
from registry.auth.principal import Principal
from registry.dependencies import SessionDep, require_scope
from registry.teachers.schemas import (
    TeacherCreate,
    TeacherList,
    TeacherOut,
    TeacherPatch,
    teacher_out,
)
from registry.teachers.service import teachers

router = APIRouter(prefix="/v1/teachers", tags=["teachers"])

TeachersRead = Annotated[Principal, Depends(require_scope(sc.TEACHERS_READ))]
TeachersWrite = Annotated[Principal, Depends(require_scope(sc.TEACHERS_WRITE))]


@router.post("", status_code=201, response_model=TeacherOut)
def add_teacher(body: TeacherCreate, principal: TeachersWrite, session: SessionDep) -> TeacherOut:
    """Register an OpenAI-compatible endpoint and model that labels tenants' traffic prompts.
    Its key stays out of the registry: `secret_name` names a file or variable of the workers."""
    return teacher_out(teachers.create(session, actor=principal, data=body), principal)


@router.get("", response_model=TeacherList)
def list_teachers(principal: TeachersRead, session: SessionDep) -> TeacherList:
    return TeacherList(items=[teacher_out(t, principal) for t in teachers.list(session)])


@router.get("/{teacher}", response_model=TeacherOut)
def get_teacher(teacher: str, principal: TeachersRead, session: SessionDep) -> TeacherOut:
    return teacher_out(teachers.get(session, name=teacher), principal)


@router.patch("/{teacher}", response_model=TeacherOut)
def update_teacher(
    teacher: str, body: TeacherPatch, principal: TeachersWrite, session: SessionDep
) -> TeacherOut:
    """Change fields; `enabled: false` stops new labelling jobs from naming it."""
    row = teachers.update(session, actor=principal, name=teacher, data=body)
    return teacher_out(row, principal)


@router.delete("/{teacher}", status_code=204)
def delete_teacher(teacher: str, principal: TeachersWrite, session: SessionDep) -> Response:
    """Refused (409) once a labelling job or drift policy names it: disable it instead."""
    teachers.delete(session, actor=principal, name=teacher)
    return Response(status_code=204)
