"""Token verification: HS256 by secret, RS256/ES256/EdDSA by JWKS, and every way a token is refused."""

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from eh_runtime.auth.settings import AuthSettings
from eh_runtime.auth.token import main as token_main
from eh_runtime.auth.token import sign_token
from eh_runtime.auth.tokens import InvalidToken, TokenVerifier

SECRET = "test-secret-that-is-long-enough-for-hs256"
SCOPE = {"subscribe": {"types": ["node_status"], "resources": ["node-*"]}}


def hs256(**overrides):
    return AuthSettings(mode="jwt", secret=SECRET, **overrides)


def claims(**overrides):
    now = int(time.time())
    return {"sub": "dash", "aud": "event-handler", "exp": now + 60, "eh": SCOPE} | overrides


async def test_a_signed_token_gives_its_principal():
    principal = await TokenVerifier(hs256()).verify(sign_token(SECRET, "dash", SCOPE))
    assert principal.subject == "dash"
    assert principal.subscribe is not None
    assert principal.subscribe.permits("node_status", "node-3")
    assert not principal.subscribe.permits("node_status", "ci-3")
    assert principal.expires_at is not None


# The claims are made when the test runs, not when it is collected: in the whole suite a test runs
# minutes after collection, and a token made then has expired (refused as expired, not for its reason).
@pytest.mark.parametrize(
    ("make_claims", "reason"),
    [
        (lambda: claims(exp=int(time.time()) - 120), "expired"),
        (lambda: claims(aud="someone-else"), "(?i)audience"),
        (lambda: claims(iss="https://evil.example"), "(?i)issuer"),
        (lambda: {k: v for k, v in claims().items() if k != "exp"}, "exp"),
        (lambda: claims(eh={"subscribe": {"types": ["nope"]}}), "eh.subscribe.types"),
    ],
    ids=["expired", "audience", "issuer", "no-exp", "unknown-type"],
)
async def test_bad_tokens_are_refused_with_a_reason(make_claims, reason):
    verifier = TokenVerifier(hs256(issuer="https://issuer.example"))
    token_claims = make_claims()
    token_claims.setdefault("iss", "https://issuer.example")
    token = jwt.encode(token_claims, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken, match=reason):
        await verifier.verify(token)


async def test_expiry_has_a_small_leeway():
    token = jwt.encode(claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256")
    assert (await TokenVerifier(hs256(leeway=30)).verify(token)).subject == "dash"
    with pytest.raises(InvalidToken, match="expired"):
        await TokenVerifier(hs256(leeway=1)).verify(token)


async def test_a_wrong_secret_an_unsigned_token_and_garbage_are_refused():
    verifier = TokenVerifier(hs256())
    for token in (
        jwt.encode(claims(), "another-secret-that-is-long-enough-too", algorithm="HS256"),
        jwt.encode(claims(), None, algorithm="none"),
        "not-a-token",
    ):
        with pytest.raises(InvalidToken):
            await verifier.verify(token)


def _jwks(tmp_path: Path, keys: list[tuple[str, object]]) -> Path:
    public = []
    for kid, key in keys:
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        else:
            jwk = json.loads(OKPAlgorithm.to_jwk(key.public_key()))  # type: ignore[attr-defined]
        public.append(jwk | {"kid": kid})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": public}))
    return path


async def test_asymmetric_tokens_are_verified_against_the_jwks_file(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()
    path = _jwks(tmp_path, [("r1", rsa_key), ("e1", ec_key), ("d1", ed_key)])
    verifier = TokenVerifier(AuthSettings(mode="jwt", jwks=str(path)))
    for kid, key, algorithm in (("r1", rsa_key, "RS256"), ("e1", ec_key, "ES256"), ("d1", ed_key, "EdDSA")):
        token = jwt.encode(claims(sub=kid), key, algorithm=algorithm, headers={"kid": kid})
        assert (await verifier.verify(token)).subject == kid
    # A key the set does not hold, and HS256 signed with the public key as "secret", are refused.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidToken, match="kid"):
        await verifier.verify(jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "r9"}))
    with pytest.raises(InvalidToken, match="HS256"):
        await verifier.verify(jwt.encode(claims(), "x" * 40, algorithm="HS256"))


async def test_a_rotated_key_is_found_by_refreshing_the_jwks(tmp_path, monkeypatch):
    old = ec.generate_private_key(ec.SECP256R1())
    path = _jwks(tmp_path, [("k1", old)])
    verifier = TokenVerifier(AuthSettings(mode="jwt", jwks=str(path), jwks_refresh=3600))
    assert await verifier.verify(jwt.encode(claims(), old, algorithm="ES256", headers={"kid": "k1"}))
    new = ec.generate_private_key(ec.SECP256R1())
    _jwks(tmp_path, [("k1", old), ("k2", new)])
    # An unknown kid refetches, but not more often than every 30 s: move the clock past that.
    monkeypatch.setattr(verifier._jwks, "_loaded_at", time.monotonic() - 31)  # type: ignore[union-attr]
    token = jwt.encode(claims(sub="rotated"), new, algorithm="ES256", headers={"kid": "k2"})
    assert (await verifier.verify(token)).subject == "rotated"


async def test_the_token_command_signs_what_the_services_accept(monkeypatch, capsys):
    monkeypatch.setenv("AUTH_SECRET", SECRET)
    code = token_main(
        ["--sub", "ops", "--subscribe", "*", "--publish", "pipeline_status", "--admin", "--ttl", "2h"]
    )
    assert code == 0
    principal = await TokenVerifier(hs256()).verify(capsys.readouterr().out.strip())
    assert principal.admin
    assert principal.publish is not None
    assert principal.publish.permits("pipeline_status", "ci-1")
    assert not principal.publish.permits("node_status", "ci-1")
    assert principal.expires_at is not None
    assert principal.expires_at - time.time() > 7000
