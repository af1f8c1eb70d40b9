"""ivr.callerid: the outbound caller-ID pool, its health and rotation.

The dialer's integration points::

    pool = load_pool(settings.numbers)                   # the pool ivr.yaml names, validated
    monitor = HealthMonitor(db, pool, interval_s=60)     # asyncio.create_task(monitor.run())
    pick = pick_caller(db, pool, callee, pool_name=decision.caller_pool)  # or pick_caller_id(...)
    assert_usable(db, pick.number)                       # right before dialing
"""

from ivr.callerid.config import HealthPolicy, NumberConfig, PoolConfig, load_pool
from ivr.callerid.flags import ImportResult, import_csv, import_json
from ivr.callerid.flagserver import FlagServer
from ivr.callerid.health import CheckReport, NumberHealth, check_pool
from ivr.callerid.monitor import HealthMonitor
from ivr.callerid.rotation import (
    CallerIdError,
    CallerIdUnusable,
    NoCallerIdAvailable,
    Pick,
    assert_usable,
    pick_caller,
    pick_caller_id,
    sticky_caller_id,
    usable_reason,
)
from ivr.callerid.state import (
    ACTIVE,
    COOLING_DOWN,
    FLAGGED,
    RETIRED,
    active_flags,
    add_flag,
    clear_flags,
    sync_pool,
)
from ivr.yamlfile import YamlConfigError

__all__ = [
    "ACTIVE", "COOLING_DOWN", "FLAGGED", "RETIRED", "CallerIdError", "CallerIdUnusable",
    "CheckReport", "FlagServer", "HealthMonitor", "HealthPolicy", "ImportResult",
    "NoCallerIdAvailable", "NumberConfig", "NumberHealth", "Pick", "PoolConfig",
    "YamlConfigError", "active_flags", "add_flag", "assert_usable", "check_pool", "clear_flags",
    "import_csv", "import_json", "load_pool", "pick_caller", "pick_caller_id", "sticky_caller_id",
    "sync_pool", "usable_reason",
]
