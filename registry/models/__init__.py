"""All tables, imported here so Alembic and the app see one metadata."""

from registry.db import Base
from registry.models.adapter import (
    Adapter,
    AdapterVersion,
    AdapterVersionDataset,
    Alias,
    AliasEvent,
)
from registry.models.audit_event import (
    GENESIS_HASH,
    AuditChainHead,
    AuditChainMark,
    AuditCheckpoint,
    AuditCheckpointEntry,
    AuditEvent,
)
from registry.models.base_model import BaseModel
from registry.models.dataset import Dataset
from registry.models.eval_suite import AdapterEvalSuite, EvalSuite
from registry.models.evaluation import DriftMetric, Eval
from registry.models.finetuning import FineTuningJob, TenantFile, TrainingCheckpoint
from registry.models.labelling import LabellingJob, Teacher
from registry.models.oauth_client import OAuthClient
from registry.models.retraining import DriftPolicy, TrainingSchedule
from registry.models.tenant import Tenant
from registry.models.traffic import Feedback, TrafficCapture, TrafficSample, UsageRecord
from registry.models.traffic_split import TrafficSplit, TrafficSplitEvent
from registry.models.training_job import TrainingJob, TrainingJobEvent

__all__ = [
    "GENESIS_HASH",
    "Adapter",
    "AdapterEvalSuite",
    "AdapterVersion",
    "AdapterVersionDataset",
    "Alias",
    "AliasEvent",
    "AuditChainHead",
    "AuditChainMark",
    "AuditCheckpoint",
    "AuditCheckpointEntry",
    "AuditEvent",
    "Base",
    "BaseModel",
    "Dataset",
    "DriftMetric",
    "DriftPolicy",
    "Eval",
    "EvalSuite",
    "Feedback",
    "FineTuningJob",
    "LabellingJob",
    "OAuthClient",
    "Teacher",
    "Tenant",
    "TenantFile",
    "TrafficCapture",
    "TrainingCheckpoint",
    "TrainingJob",
    "TrainingSchedule",
    "TrafficSample",
    "TrafficSplit",
    "TrafficSplitEvent",
    "TrainingJobEvent",
    "UsageRecord",
]
