"""Where and how a sink writes: the ``[influx]`` table of the collector's TOML, validated at load.

The table is read with the rest of the collector's file by the loader every Kilnwatch config shares
(``agent.config_load``): ``token = "${INFLUX_TOKEN}"`` or ``url = "${INFLUX_URL:-http://127.0.0.1:8086}"``
come from the environment, and each problem is one line naming the file, the key (``influx.bucket``) and
the fix. Unknown keys are errors (a typo such as ``bucket_name`` must not silently fall back to a default),
and each API's required keys are checked with a message that names the key and the fix. The table has no
path keys.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from agent.config_fields import Strict

#: Keys that belong to one API only; setting them for the other is a mistake worth reporting.
_API_KEYS = {
    "v1": ("database", "retention_policy", "username", "password"),
    "v2": ("org", "bucket", "token"),
}


class InfluxConfig(Strict):
    """An InfluxDB (or compatible) server. ``api = "v1"`` for 1.x (``/write``), ``"v2"`` for 2.x/3.x/1.8+.

    Strict like every config table: ``batch_lines = "5000"`` or ``gzip = 1`` is an error, not a guess.
    """

    api: Literal["v1", "v2"]
    url: str = Field(description="base URL, e.g. http://127.0.0.1:8086")
    # API v1
    database: str | None = None
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    # API v2
    org: str | None = None
    bucket: str | None = None
    token: SecretStr | None = None
    # both
    timeout_s: float = Field(default=10.0, gt=0)
    batch_lines: int = Field(default=5000, ge=1, description="lines per HTTP request")
    gzip: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url {url!r} must start with http:// or https://, e.g. http://127.0.0.1:8086")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _keys_of_the_api(self) -> Self:
        other_api = "v2" if self.api == "v1" else "v1"
        stray = [key for key in _API_KEYS[other_api] if getattr(self, key) is not None]
        if stray:
            raise ValueError(
                f'only api = "{other_api}" uses {_listed(stray)}: remove it, or set api = "{other_api}"'
            )
        if self.api == "v1":
            if not self.database:
                raise ValueError('api = "v1" needs `database`, e.g. database = "kilnwatch"')
            if (self.username is None) != (self.password is None):
                raise ValueError("set both `username` and `password`, or neither")
        else:
            missing = [key for key in ("bucket", "org") if not getattr(self, key)]
            if missing:
                raise ValueError(
                    f'api = "v2" needs {_listed(missing)}, '
                    'e.g. org = "plant1", bucket = "kilnwatch" (for InfluxDB 1.8 use bucket = "db/rp")'
                )
        return self


def _listed(keys: list[str]) -> str:
    return " and ".join(f"`{key}`" for key in keys)
