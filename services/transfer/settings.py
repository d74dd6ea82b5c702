from pydantic import Field

from libs.runtime.settings import ServiceSettings


class Settings(ServiceSettings):
    """Read from ``TRANSFER_<FIELD>`` (``TRANSFER_CONFIRMATION_DAYS``...)."""

    service: str = "transfer"
    port: int = 8003
    # A11.2: both parties confirm (and followers may opt out) within this many days
    confirmation_days: int = Field(15, ge=1)
    # A11.2: an approved transfer completes no earlier than this many days after its
    # followers were told, so that they can opt out (0: at once)
    opt_out_days: int = Field(7, ge=0)
    # A11.1: the no-trading rules
    refuse_blacklisted: bool = True
    refuse_under_measure: bool = True
    min_days_between_transfers: int = Field(180, ge=0)
    # A11.1 / Art. 18(8): this many completed transfers among a group of identities within
    # the window (or an account returning to an earlier owner) is suspected trading
    trading_window_days: int = Field(365, ge=1)
    trading_threshold: int = Field(3, ge=2)
    # after an owner change the account earns no ad revenue for this many months
    ad_revenue_pause_months: int = Field(3, ge=0)
    # how often the app expires applications past their deadline and completes transfers
    # whose opt-out period is over (0: never)
    sweep_interval_seconds: float = 300
