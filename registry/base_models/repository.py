from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import BaseModel


class BaseModelRepository:
    """Base models are platform-wide: no tenant filter."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_name(self, name: str, *, lock: bool = False) -> BaseModel | None:
        stmt = select(BaseModel).where(BaseModel.name == name)
        if lock:
            stmt = stmt.with_for_update()
        return self.session.execute(stmt).scalar_one_or_none()

    def get(self, base_model_id: uuid.UUID) -> BaseModel | None:
        return self.session.get(BaseModel, base_model_id)

    def list(self) -> Sequence[BaseModel]:
        return self.session.execute(select(BaseModel).order_by(BaseModel.name)).scalars().all()

    def add(self, model: BaseModel) -> None:
        self.session.add(model)
