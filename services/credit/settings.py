from pydantic import Field

from libs.runtime.settings import ServiceSettings


class Settings(ServiceSettings):
    """Read from ``CREDIT_<FIELD>`` (``CREDIT_START_SCORE``...); the scoring model's
    parameters (ADR 0017) and the detector's."""

    service: str = "credit"
    port: int = 8004
    # the scoring model (A13.1, A7.2): credit-model-v1 unless overridden
    model_version: str = "credit-model-v1"
    start_score: int = 100
    severe_points: int = -30
    moderate_points: int = -15
    rumor_points: int = -20
    clean_day_points: int = 1
    clean_day_cap: int = 20
    anomaly_points: int = -3
    forced_follow_points: int = -1
    forced_follow_unit: int = Field(10, ge=1)
    # A13.2: rumor strikes
    strikes_to_blacklist: int = Field(3, ge=1)
    strike_window_days: int = Field(180, ge=1)
    strike_expiry_days: int = Field(365, ge=1)
    # A12.1: the detector
    detector_threshold: float = 6.0
    detector_history: int = Field(6, ge=3)
    max_batch: int = Field(100_000, ge=1)
    # keep every raw sample in the credit_samples journal (false: pruned once the
    # baselines hold what was learned from it; the anomaly events carry their evidence)
    keep_samples: bool = True
    # the detector's memory, cached in the process and written behind (ADR 0029)
    baseline_flush_seconds: float = Field(5.0, gt=0)
    baseline_cache_rows: int = Field(2_000_000, ge=1)  # rows held (LRU beyond)
    baseline_max_dirty: int = Field(500_000, ge=1)  # rows written with a batch beyond
    # how often the app rescores every account (0: never; the command still works)
    sweep_interval_seconds: float = 3600
