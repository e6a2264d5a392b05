//! SCRAM (RFC 5802) as Kafka uses it: SCRAM-SHA-256 and SCRAM-SHA-512 credentials stored
//! salted (salt, iterations, StoredKey, ServerKey; never the password), and the server side
//! of one exchange. Primitives come from the RustCrypto crates.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's minimum (and `kafka-storage --add-scram` default) iteration count.
pub(crate) const MIN_ITERATIONS: u32 = 4096;
/// Kafka's maximum iteration count.
pub(crate) const MAX_ITERATIONS: u32 = 16384;

/// A SCRAM mechanism, with Kafka's numeric codes (ScramMechanism).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    /// The SASL mechanism name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// From a SASL mechanism name.
    pub(crate) fn from_name(s: &str) -> Option<Self> {
        match s {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Kafka's code (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512).
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    /// From Kafka's code.
    pub(crate) fn from_code(c: i8) -> Option<Self> {
        match c {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|mut m| {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                })
                .unwrap_or_default(),
            Self::Sha512 => Hmac::<Sha512>::new_from_slice(key)
                .map(|mut m| {
                    m.update(data);
                    m.finalize().into_bytes().to_vec()
                })
                .unwrap_or_default(),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) of RFC 5802: PBKDF2 with this mechanism's HMAC.
    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            Self::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// A stored SCRAM credential: what the server needs to verify a client, and nothing from
/// which the password could be replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Credential {
    pub(crate) salt: Vec<u8>,
    pub(crate) iterations: u32,
    pub(crate) stored_key: Vec<u8>,
    pub(crate) server_key: Vec<u8>,
}

impl Credential {
    /// The credential for a salted password (what AlterUserScramCredentials carries).
    pub(crate) fn from_salted(
        mech: Mechanism,
        salted: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Self {
        let client_key = mech.hmac(salted, b"Client Key");
        Self {
            salt,
            iterations,
            stored_key: mech.hash(&client_key),
            server_key: mech.hmac(salted, b"Server Key"),
        }
    }

    /// A new credential for a password, with a random salt.
    pub(crate) fn from_password(mech: Mechanism, password: &str, iterations: u32) -> Self {
        let mut salt = vec![0u8; 32];
        rand::rng().fill_bytes(&mut salt);
        let salted = mech.salted_password(password.as_bytes(), &salt, iterations);
        Self::from_salted(mech, &salted, salt, iterations)
    }

    /// Whether `password` is the password of this credential (SASL/PLAIN against SCRAM
    /// credentials), compared in constant time.
    pub(crate) fn verify_password(&self, mech: Mechanism, password: &str) -> bool {
        let salted = mech.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let stored = mech.hash(&mech.hmac(&salted, b"Client Key"));
        stored.ct_eq(&self.stored_key).into()
    }
}

/// Why a SCRAM exchange failed. The text goes to the client in SaslAuthenticate's error
/// message, so it never says whether the user exists.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ScramError {
    #[error("Invalid SCRAM client first message: {0}")]
    BadFirst(&'static str),
    #[error("Invalid SCRAM client final message: {0}")]
    BadFinal(&'static str),
    #[error("Authentication failed: Client requested an authorization id that is different from username")]
    AuthzId,
    #[error("Authentication failed: Invalid nonce in the final client message")]
    Nonce,
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {0}")]
    Credentials(&'static str),
    #[error("SCRAM exchange already finished")]
    State,
}

/// Decodes a SCRAM `saslname` (`=2C` is `,`, `=3D` is `=`).
fn unescape_name(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::BadFirst("invalid username escape")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The server side of one SCRAM exchange.
pub(crate) enum ScramServer {
    /// Waiting for client-first-message.
    Start(Mechanism),
    /// Sent server-first-message; waiting for client-final-message.
    SentFirst {
        mech: Mechanism,
        user: String,
        cred: Option<Credential>,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

/// What a step of the exchange produced.
pub(crate) enum Step {
    /// Send this challenge and wait for the next client message.
    Challenge(Vec<u8>),
    /// Authenticated as this user; send this final message.
    Success { user: String, last: Vec<u8> },
}

impl ScramServer {
    pub(crate) fn new(mech: Mechanism) -> Self {
        Self::Start(mech)
    }

    /// Processes one client message. `lookup` finds a user's stored credential.
    pub(crate) fn step(
        &mut self,
        msg: &[u8],
        lookup: impl FnOnce(&str, Mechanism) -> Option<Credential>,
    ) -> Result<Step, ScramError> {
        let text = std::str::from_utf8(msg).map_err(|_| ScramError::BadFirst("not UTF-8"))?;
        match std::mem::replace(self, Self::Done) {
            Self::Start(mech) => {
                // gs2-header: "n," (no channel binding; "y," tolerated), optional "a=authzid", ","
                let (cb, rest) = text
                    .split_once(',')
                    .ok_or(ScramError::BadFirst("missing gs2 header"))?;
                if cb != "n" && cb != "y" {
                    return Err(ScramError::BadFirst("channel binding is not supported"));
                }
                let (authzid, bare) = rest
                    .split_once(',')
                    .ok_or(ScramError::BadFirst("missing gs2 header"))?;
                let mut user = None;
                let mut client_nonce = None;
                for attr in bare.split(',') {
                    match attr.split_once('=') {
                        Some(("n", v)) => user = Some(unescape_name(v)?),
                        Some(("r", v)) => client_nonce = Some(v.to_string()),
                        Some(("m", _)) => return Err(ScramError::BadFirst("reserved attribute m")),
                        // Extensions (e.g. tokenauth=true) are accepted and not acted on.
                        _ => {}
                    }
                }
                let user = user.ok_or(ScramError::BadFirst("missing username"))?;
                let client_nonce = client_nonce
                    .filter(|n| {
                        !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic() && c != ',')
                    })
                    .ok_or(ScramError::BadFirst("missing or invalid nonce"))?;
                if let Some(a) = authzid.strip_prefix("a=") {
                    if unescape_name(a)? != user {
                        return Err(ScramError::AuthzId);
                    }
                } else if !authzid.is_empty() {
                    return Err(ScramError::BadFirst("invalid authzid"));
                }
                let cred = lookup(&user, mech);
                // Alphanumeric, as Kafka's (a base-36 number): some clients mishandle
                // base64's punctuation in nonces.
                let server_nonce: String = {
                    use rand::Rng;
                    const ALPHABET: &[u8] =
                        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                    let mut rng = rand::rng();
                    (0..32)
                        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                        .collect()
                };
                let nonce = format!("{client_nonce}{server_nonce}");
                // An unknown user gets a plausible challenge and fails at the proof, so the
                // exchange does not reveal which users exist.
                let (salt, iterations) = match &cred {
                    Some(c) => (c.salt.clone(), c.iterations),
                    None => (mech.hash(user.as_bytes()), MIN_ITERATIONS),
                };
                let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
                let out = server_first.clone().into_bytes();
                *self = Self::SentFirst {
                    mech,
                    user,
                    cred,
                    client_first_bare: bare.to_string(),
                    server_first,
                    nonce,
                };
                Ok(Step::Challenge(out))
            }
            Self::SentFirst {
                mech,
                user,
                cred,
                client_first_bare,
                server_first,
                nonce,
            } => {
                let (without_proof, proof) = text
                    .rsplit_once(",p=")
                    .ok_or(ScramError::BadFinal("missing proof"))?;
                let mut got_nonce = None;
                let mut binding = None;
                for attr in without_proof.split(',') {
                    match attr.split_once('=') {
                        Some(("r", v)) => got_nonce = Some(v),
                        Some(("c", v)) => binding = Some(v),
                        _ => {}
                    }
                }
                if binding.is_none() {
                    return Err(ScramError::BadFinal("missing channel binding"));
                }
                // Kafka accepts a final nonce that ends with the combined nonce: librdkafka
                // before 2.1 sends its own nonce once more in front of it.
                if !got_nonce.is_some_and(|n| n.ends_with(nonce.as_str())) {
                    tracing::debug!(expected = %nonce, final_message = %without_proof, "SCRAM nonce mismatch");
                    return Err(ScramError::Nonce);
                }
                let proof = B64
                    .decode(proof)
                    .map_err(|_| ScramError::BadFinal("proof is not base64"))?;
                let fail = ScramError::Credentials(mech.name());
                let cred = cred.ok_or(fail.clone())?;
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let client_signature = mech.hmac(&cred.stored_key, auth_message.as_bytes());
                if proof.len() != client_signature.len() {
                    return Err(fail);
                }
                let client_key: Vec<u8> = proof
                    .iter()
                    .zip(&client_signature)
                    .map(|(a, b)| a ^ b)
                    .collect();
                if !bool::from(mech.hash(&client_key).ct_eq(&cred.stored_key)) {
                    return Err(fail);
                }
                let server_signature = mech.hmac(&cred.server_key, auth_message.as_bytes());
                Ok(Step::Success {
                    user,
                    last: format!("v={}", B64.encode(server_signature)).into_bytes(),
                })
            }
            Self::Done => Err(ScramError::State),
        }
    }
}

/// The client side of a SCRAM exchange (a mirror link authenticating to its source).
pub(crate) struct ScramClient {
    mech: Mechanism,
    user: String,
    password: String,
    nonce: String,
    client_first_bare: String,
    expected_server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub(crate) fn new(mech: Mechanism, user: &str, password: &str) -> Self {
        let nonce: String = {
            use rand::Rng;
            const ALPHABET: &[u8] =
                b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            let mut rng = rand::rng();
            (0..24)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        let escaped = user.replace('=', "=3D").replace(',', "=2C");
        Self {
            mech,
            user: user.to_string(),
            password: password.to_string(),
            client_first_bare: format!("n={escaped},r={nonce}"),
            nonce,
            expected_server_signature: None,
        }
    }

    /// client-first-message.
    pub(crate) fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// client-final-message for a server-first-message.
    pub(crate) fn final_message(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8")?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v.to_string()),
                Some(("s", v)) => salt = B64.decode(v).ok(),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let nonce = nonce
            .filter(|n| n.starts_with(&self.nonce))
            .ok_or("server nonce does not extend ours")?;
        let salt = salt.ok_or("server-first without a salt")?;
        let iterations = iterations
            .filter(|i| *i >= MIN_ITERATIONS)
            .ok_or("server-first without an acceptable iteration count")?;
        let salted = self
            .mech
            .salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = self.mech.hmac(&salted, b"Client Key");
        let stored_key = self.mech.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = self.mech.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = self.mech.hmac(&salted, b"Server Key");
        self.expected_server_signature = Some(self.mech.hmac(&server_key, auth.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final-message: the server knew the credential too.
    pub(crate) fn verify(&self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final).map_err(|_| "server-final is not UTF-8")?;
        let v = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or_else(|| format!("authentication of {} failed: {text}", self.user))?;
        match &self.expected_server_signature {
            Some(e) if bool::from(e.ct_eq(&v)) => Ok(()),
            _ => Err("the server's signature does not match".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side of RFC 5802, to drive the server in tests.
    fn client_final(
        mech: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> String {
        let mut salt = None;
        let mut iters = 0;
        let mut nonce = "";
        for a in server_first.split(',') {
            match a.split_once('=') {
                Some(("s", v)) => salt = B64.decode(v).ok(),
                Some(("i", v)) => iters = v.parse().unwrap_or(0),
                Some(("r", v)) => nonce = v,
                _ => {}
            }
        }
        let salted = mech.salted_password(password.as_bytes(), &salt.unwrap_or_default(), iters);
        let client_key = mech.hmac(&salted, b"Client Key");
        let stored = mech.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = mech.hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    fn run(mech: Mechanism, stored_pw: &str, client_pw: &str) -> Result<String, ScramError> {
        let cred = Credential::from_password(mech, stored_pw, MIN_ITERATIONS);
        let mut s = ScramServer::new(mech);
        let bare = "n=al=2Cice,r=fyko+d2lbbFgONRv9qkxdawL";
        let Step::Challenge(first) = s.step(format!("n,,{bare}").as_bytes(), |u, _| {
            (u == "al,ice").then(|| cred.clone())
        })?
        else {
            return Err(ScramError::State);
        };
        let first = String::from_utf8(first).unwrap_or_default();
        let fin = client_final(mech, client_pw, bare, &first);
        match s.step(fin.as_bytes(), |_, _| None)? {
            Step::Success { user, .. } => Ok(user),
            Step::Challenge(_) => Err(ScramError::State),
        }
    }

    #[test]
    fn exchange_succeeds_with_the_password_and_fails_without() {
        for mech in [Mechanism::Sha256, Mechanism::Sha512] {
            assert_eq!(run(mech, "secret", "secret"), Ok("al,ice".to_string()));
            assert_eq!(
                run(mech, "secret", "wrong"),
                Err(ScramError::Credentials(mech.name()))
            );
        }
    }

    #[test]
    fn replayed_final_message_fails_on_a_new_nonce() {
        let mech = Mechanism::Sha256;
        let cred = Credential::from_password(mech, "pw", MIN_ITERATIONS);
        let bare = "n=bob,r=abc";
        let mut s1 = ScramServer::new(mech);
        let Ok(Step::Challenge(first)) =
            s1.step(format!("n,,{bare}").as_bytes(), |_, _| Some(cred.clone()))
        else {
            panic!("no challenge");
        };
        let fin = client_final(mech, "pw", bare, &String::from_utf8_lossy(&first));
        assert!(matches!(
            s1.step(fin.as_bytes(), |_, _| None),
            Ok(Step::Success { .. })
        ));
        // The same final message on a second exchange: the server nonce differs.
        let mut s2 = ScramServer::new(mech);
        let _ = s2.step(format!("n,,{bare}").as_bytes(), |_, _| Some(cred.clone()));
        assert_eq!(
            s2.step(fin.as_bytes(), |_, _| None).err(),
            Some(ScramError::Nonce)
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        for bad in [
            &b"garbage"[..],
            b"p=x,,n=a,r=b",
            b"n,,r=abc",
            b"n,,n=a",
            b"n,,n=a=5,r=x",
            b"\xff\xfe",
        ] {
            let mut s = ScramServer::new(Mechanism::Sha512);
            assert!(s.step(bad, |_, _| None).is_err(), "{bad:?}");
        }
        let mut s = ScramServer::new(Mechanism::Sha512);
        assert_eq!(
            s.step(b"n,a=eve,n=bob,r=x", |_, _| None).err(),
            Some(ScramError::AuthzId)
        );
    }

    #[test]
    fn client_and_server_agree() {
        for mech in [Mechanism::Sha256, Mechanism::Sha512] {
            let cred = Credential::from_password(mech, "pw,=x", MIN_ITERATIONS);
            let mut server = ScramServer::new(mech);
            let mut client = ScramClient::new(mech, "us=er,1", "pw,=x");
            let Ok(Step::Challenge(first)) = server.step(&client.first(), |u, _| {
                (u == "us=er,1").then(|| cred.clone())
            }) else {
                panic!("no challenge");
            };
            let fin = client.final_message(&first).unwrap_or_default();
            let Ok(Step::Success { user, last }) = server.step(&fin, |_, _| None) else {
                panic!("not authenticated");
            };
            assert_eq!(user, "us=er,1");
            assert!(client.verify(&last).is_ok());
            assert!(client.verify(b"v=AAAA").is_err());
        }
    }

    #[test]
    fn plain_password_check_against_scram_credential() {
        let c = Credential::from_password(Mechanism::Sha512, "admin-secret", 4096);
        assert!(c.verify_password(Mechanism::Sha512, "admin-secret"));
        assert!(!c.verify_password(Mechanism::Sha512, "admin-secreT"));
    }
}
