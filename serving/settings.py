"""The service's settings, read once from arguments or CLAIMS_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from claims.domain.language import LanguageSettings
from claims.store.data_settings import DataSettings
from schemas.jobs import RetrainEngine
from schemas.scoring import Precision

ARGUMENTS_ONLY = frozenset({"auth"})


class WithoutArgumentsOnly(PydanticBaseSettingsSource):
    """A settings source (the environment, a dotenv file) that cannot set `ARGUMENTS_ONLY`."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in ARGUMENTS_ONLY:
            return None, field_name, False
        return self.inner.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        return {name: v for name, v in self.inner().items() if name not in ARGUMENTS_ONLY}


class ServiceSettings(DataSettings, LanguageSettings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, as by default; `auth` only from them (`claims serve --no-auth`)."""
        return (
            init_settings,
            *(
                WithoutArgumentsOnly(settings_cls, source)
                for source in (env_settings, dotenv_settings, file_secret_settings)
            ),
        )

    model_dir: Path | None = Field(
        default=None,
        description="A checkpoint to serve, pinned: the registry's champion is not followed.",
    )
    config: Path | None = Field(
        default=None,
        description="The config whose tasks the service must answer; a checkpoint for other "
        "tasks is refused. Default: the checkpoint's own config, else the packaged default.",
    )
    base_model: str | None = Field(
        default=None, description="Overrides the config's base model ('default' or a folder)."
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_upload_bytes: int = Field(
        default=4 * 1024**3,
        ge=1024,
        description="Largest backlog file `POST /v1/batch-jobs` takes.",
    )
    auth: bool = Field(
        default=True,
        description="False only for development: `claims serve --no-auth`. Never read from the "
        "environment: a stray CLAIMS_AUTH=false must not open a production service.",
    )
    allowed_hosts: list[str] = Field(
        default=["localhost", "127.0.0.1", "::1"],
        description="Without keys (`--no-auth`), the only names the service answers to, as Host "
        "and as any Origin: a web page elsewhere cannot drive a developer's service, by a "
        "cross-site request or by rebinding its own name to a loopback address.",
    )
    rate_limit_per_minute: int = Field(
        default=6000,
        ge=1,
        description="Claims per key a minute (a request without claims counts one, a batch "
        "one per claim), in bursts of up to a tenth.",
    )
    failed_keys_per_minute: int = Field(
        default=60,
        ge=1,
        description="Look-ups of keys that prove not valid, per client address a minute; past "
        "it the address gets 429 before its next look-up.",
    )
    precision: Precision = Field(
        default="fp32",
        description="On the CPU. fp32 keeps a claim's answer the same whoever it is batched "
        "with. bf16 (auto: where the CPU has it natively) serves 1.36 to 1.54 times as many "
        "claims a second under load and moves "
        "no metric by more than a tenth of a point, but a claim's probabilities then move by "
        "up to about 0.001 with its micro-batch neighbours. A GPU always runs bf16.",
    )
    forward_batch_size: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Claims per forward pass. On a CPU an encoder that allows it runs a "
        "micro-batch's claims end to end with no padding (claims/model/packing.py), and 16 run as "
        "fast per claim as 32; one that does not pads each pass to its longest claim, where "
        "passes of 8 sorted by length waste less.",
    )
    inference_lanes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Forward passes that run at once, torch's threads shared out among them. "
        "1: one pass at a time on every core. On the 2-core CPU in bf16, 2 lanes of one core "
        "each served 1.34 times the claims a second under micro-batching at 32 clients and 1.28 "
        "times at 128, but 0.80 times at 8 and 0.81 times at 1 (docs/serving-experiments.md): "
        "for a platform that keeps 32 or more requests in flight.",
    )
    micro_batching: bool = Field(
        default=True, description="Gather concurrent single-claim requests into one pass."
    )
    micro_batch_max: int = Field(
        default=16,
        ge=1,
        le=256,
        description="Claims per micro-batch at most. At 32 clients, 16 serves as many claims a "
        "second as 32 with a lower p99: half the clients' requests come and go while the other "
        "half's pass runs.",
    )
    micro_batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        description="How long an open micro-batch that holds as many claims as the last one "
        "waits for its next request; each arrival restarts the wait.",
    )
    micro_batch_max_wait_ms: float = Field(
        default=20.0,
        ge=0,
        description="How long a micro-batch waits for company in all, among it the last "
        "batch's clients coming back.",
    )
    scoring_workers: int = Field(
        default=1,
        ge=1,
        description="Preparing processes of a scoring job started through the API. It shares "
        "the machine with live triage, so 1 (a thread beside the job's model) unless the "
        "machine has cores to spare.",
    )
    batch_chunk_rows: int = Field(
        default=16_384,
        ge=1,
        description="Rows per chunk of a batch job: the unit its scoring resumes from, on any "
        "replica, once the process running it has died.",
    )
    batch_jobs_per_key: int = Field(
        default=1,
        ge=1,
        description="Batch jobs (uploading, queued or running) one key may have at once; "
        "past it `POST /v1/batch-jobs` gets 429 before the upload is read.",
    )
    batch_jobs_total: int = Field(
        default=2,
        ge=1,
        description="Batch jobs (uploading, queued or running) the service takes at once, all "
        "keys and replicas together; past it 429. Each job is a `claims score` process that "
        "uses every core it is given beside live triage (`job_processes` of them per replica): "
        "jobs at once share the cores rather than finish sooner, and the second lets one "
        "client's job start while another's runs.",
    )
    job_processes: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Job processes (`claims score`, `claims retrain`) one replica runs at once. "
        "A job past every replica's slots waits queued in the store, and the first replica "
        "with a free slot starts it; the caps on batch jobs bound how many may wait.",
    )
    retrain_engine: RetrainEngine = Field(
        default=RetrainEngine.local,
        description="Where a retrain runs: local, in a `claims retrain` process beside the "
        "service; ray, as a task that process submits to the Ray cluster RAY_ADDRESS names (a "
        "GPU node when it has one), reading the data path every node mounts.",
    )
    batch_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="Days a finished batch job's upload, output, rejects and log are kept, from "
        "its end; then deleted (the job's status stays, its downloads answer 410). They are "
        "copies of the insurer's claims, narratives included, with no use once downloaded.",
    )
    prediction_retention_days: float = Field(
        default=365.0,
        ge=0,
        description="Days a recorded prediction, with its claim's narrative, is kept; then "
        "deleted. Feedback that named it is kept (its labels are the insurer's record and "
        "retraining's signal; it holds no narrative), no longer linked to it; a correction "
        "of a claim not in the historical data then has no text left to retrain on. 0: kept "
        "for ever.",
    )
    inference_timeout: float = Field(default=30.0, gt=0, description="Seconds before a 504.")
    max_queued_claims: int = Field(
        default=1024,
        ge=1,
        description="Claims admitted to wait for a forward pass, at most. Past it, or past what "
        "the pace of recent passes answers within the inference timeout, a triage request gets "
        "503 with Retry-After at once instead of waiting to time out.",
    )
    shutdown_grace: float = Field(
        default=30.0, ge=0, description="Seconds to finish requests in flight on SIGTERM."
    )
    reload_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between looks at the registry's champion. On PostgreSQL a replica "
        "also hears of every switch as it commits (LISTEN/NOTIFY) and looks at once, so this is "
        "the safety net for a notice missed while its listening connection was down; on SQLite "
        "it is how soon a switch made elsewhere is served.",
    )
