"""`AUTH_*` and `CORS_*`: how every HTTP door checks tokens, and which web origins may call it."""

from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from eh_runtime.durations import Duration


class AuthSettings(BaseSettings):
    """HTTP authentication. There is no default mode: a service refuses to start until it is told
    `AUTH_MODE=jwt` (with a secret or a JWKS) or, for development only, `AUTH_MODE=none`."""

    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", env_ignore_empty=True)

    mode: Literal["jwt", "none"] | None = Field(
        default=None,
        validate_default=True,
        description="jwt: every request needs a token; none: no HTTP auth (development only).",
    )
    secret: SecretStr | None = Field(default=None, description="HS256 shared secret (at least 32 bytes).")
    jwks: str | None = Field(
        default=None,
        validate_default=True,
        description="RS256/ES256/EdDSA public keys: a JWKS file path or an https:// URL.",
    )
    jwks_refresh: Duration = Field(
        default=timedelta(minutes=5), description="How long fetched JWKS keys are cached before a refresh."
    )
    issuer: str | None = Field(default=None, description="Required `iss` of every token (unset: any).")
    audience: str = Field(default="event-handler", description="Required `aud` of every token.")
    leeway: Duration = Field(default=timedelta(seconds=30), description="Clock skew allowed on exp/nbf/iat.")
    cookie: str = Field(
        default="eh_token", description="Name of the cookie a browser may carry the token in."
    )

    @field_validator("mode")
    @classmethod
    def _mode_is_set(cls, mode: str | None) -> str | None:
        if mode is None:
            raise ValueError(
                "is not set: set AUTH_MODE=jwt with AUTH_SECRET or AUTH_JWKS, "
                "or AUTH_MODE=none to serve without HTTP auth (development only)"
            )
        return mode

    @field_validator("secret")
    @classmethod
    def _secret_is_long(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes long")
        return secret

    @field_validator("jwks")
    @classmethod
    def _keys_given(cls, jwks: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("mode") == "jwt" and jwks is None and info.data.get("secret") is None:
            raise ValueError("AUTH_MODE=jwt needs AUTH_SECRET (HS256) or AUTH_JWKS (a file or URL)")
        return jwks


class CorsSettings(BaseSettings):
    """Cross-origin requests from dashboards on other origins. Nothing is allowed by default."""

    model_config = SettingsConfigDict(env_prefix="CORS_", extra="ignore", env_ignore_empty=True)

    allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call this service from a browser, comma-separated "
        "(e.g. https://dash.example.com); credentials (cookies) are allowed for these only.",
    )
    max_age: Duration = Field(default=timedelta(minutes=10), description="How long a preflight is cached.")

    @model_validator(mode="before")
    @classmethod
    def _split_origins(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("allow_origins"), str):
            data = {
                **data,
                "allow_origins": [o.strip() for o in data["allow_origins"].split(",") if o.strip()],
            }
        return data

    @model_validator(mode="after")
    def _no_wildcard(self) -> Self:
        if "*" in self.allow_origins:
            raise ValueError("CORS_ALLOW_ORIGINS may not be '*': list the dashboards' origins")
        return self
