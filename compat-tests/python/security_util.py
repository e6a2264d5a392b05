"""Key material and server settings for the security tests.

Certificates are generated at test time with trustme: a CA, a server certificate for
127.0.0.1 / localhost, and client certificates whose subject names the principal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import trustme


@dataclass
class Pki:
    ca: trustme.CA
    dir: Path
    ca_pem: Path
    server_pem: Path

    def client(self, name: str, org_unit: str = "eng") -> Dict[str, str]:
        """A client certificate for CN=<name>,OU=<org_unit>,O=Example: paths of its
        certificate and key (PEM), as librdkafka wants them."""
        cert = self.ca.issue_cert(
            f"{name}.clients.test",
            common_name=name,
            organization_name="Example",
            organization_unit_name=org_unit,
        )
        cert_path = self.dir / f"{name}.crt.pem"
        key_path = self.dir / f"{name}.key.pem"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        cert.private_key_pem.write_to_path(str(key_path))
        return {"cert": str(cert_path), "key": str(key_path)}


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca_pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server_pem = directory / "server.pem"
    # Kafka's PEM keystore: private key and certificate chain in one file.
    with open(server_pem, "wb") as f:
        f.write(server.private_key_pem.bytes())
        for c in server.cert_chain_pems:
            f.write(c.bytes())
    return Pki(ca=ca, dir=directory, ca_pem=ca_pem, server_pem=server_pem)


def tls_sets(pki: Pki) -> Dict[str, str]:
    return {
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki.server_pem),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(pki.ca_pem),
    }


def scram_args(users: Dict[str, str], mechanism: str = "SCRAM-SHA-512") -> List[str]:
    out: List[str] = []
    for name, password in users.items():
        out += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
    return out
