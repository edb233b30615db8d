"""GitHub's side of secret scanning, played by the tests: a signing key made at run time, and its keys file.

Nothing here calls GitHub; the file has GitHub's format
(https://api.github.com/meta/public_keys/secret_scanning).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

GITHUB_URL = "/api/v1/secret-scanning/github/"


@dataclass
class GitHubSigner:
    key_identifier: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, key_identifier: str) -> GitHubSigner:
        return cls(key_identifier, ec.generate_private_key(ec.SECP256R1()))

    def public_entry(self, is_current: bool = True) -> dict[str, object]:
        pem = self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"key_identifier": self.key_identifier, "key": pem.decode(), "is_current": is_current}

    def signature(self, body: bytes) -> str:
        return base64.b64encode(self.private_key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    def headers(self, body: bytes) -> dict[str, str]:
        return {
            "HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER": self.key_identifier,
            "HTTP_GITHUB_PUBLIC_KEY_SIGNATURE": self.signature(body),
        }


def write_keys_file(path: Path, *signers: GitHubSigner) -> Path:
    path.write_text(json.dumps({"public_keys": [signer.public_entry() for signer in signers]}))
    return path


def alert_body(*tokens: str, url: str = "https://github.com/octo/repo/blob/abc/settings.py") -> bytes:
    return json.dumps(
        [{"token": token, "type": "keyscope_api_key", "url": url, "source": "content"} for token in tokens]
    ).encode()


def post_alert(client, body: bytes, signer: GitHubSigner | None = None, **headers: str):
    signed = signer.headers(body) if signer is not None else {}
    return client.generic("POST", GITHUB_URL, body, content_type="application/json", **{**signed, **headers})
