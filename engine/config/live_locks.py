"""The live profile's start locks: ``LIVE_MODE`` and ``ENABLE_LIVE_TRADING``.

Invariant: a ``live`` profile is refused, each missing lock named, before the data dir is touched
or the exchange dialled (the CLI checks first; ``venue_setup`` checks again before opening a
venue). The typed phrase, the TOTP code and a green preflight are asked later, at go-live.
"""

from __future__ import annotations

from engine.config.loader import Config, ConfigError


def check_live_locks(cfg: Config) -> None:
    """A live profile starts only with both live locks set (``LIVE_MODE`` and
    ``ENABLE_LIVE_TRADING``): refused, naming each missing lock, before the data dir is touched
    or the exchange dialled. The typed phrase, TOTP and a green preflight are asked at go-live."""
    if cfg.kind != "live":
        return
    missing = [
        env
        for env, on in (
            ("LIVE_MODE", cfg.live.live_mode),
            ("ENABLE_LIVE_TRADING", cfg.live.enable_live_trading),
        )
        if not on
    ]
    if missing:
        raise ConfigError(
            f"live profile refused before contacting the exchange: {' and '.join(missing)} "
            f"not true; set {', '.join(m + '=true' for m in missing)} (or [live] in the "
            "profile) to trade live, or run --profile testnet",
            origin=f"profile {cfg.name!r}",
            key="live.live_mode" if "LIVE_MODE" in missing else "live.enable_live_trading",
        )
